"""Servers starting at once on one empty PostgreSQL (a Deployment's replicas) all come up: the store is
migrated, seeded and given its administrator key exactly once (``SqlDialect.preparing``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, _drop_postgres, _fresh_postgres
from workplane.auth.credentials import ADMIN_CLIENT_ID
from workplane.services.setup import prepare_store
from workplane.settings import Settings
from workplane.store import migrate
from workplane.store.database import create_database
from workplane.store.schema import access_keys

SERVERS = 4


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip("WORKPLANE_TEST_POSTGRES_URL is not set")
    url, name = _fresh_postgres(POSTGRES_URL)
    yield url
    _drop_postgres(POSTGRES_URL, name)


def test_servers_starting_together_prepare_the_store_once(empty_postgres: str, tmp_path: Path) -> None:
    # Each "server" has its own engine and data directory, as the pods of a Deployment do.
    settings = [
        Settings(data_dir=tmp_path / f"server-{i}", database_url=empty_postgres) for i in range(SERVERS)
    ]
    databases = [create_database(s) for s in settings]
    start = threading.Barrier(SERVERS)
    secrets: list[str | None] = []
    failures: list[BaseException] = []

    def start_server(index: int) -> None:
        db = databases[index]
        start.wait()
        try:
            secrets.append(prepare_store(db, settings[index], announce=False))
        except BaseException as exc:
            failures.append(exc)

    # Daemon threads: without the lock a start may wait forever on another's locks; that fails here.
    threads = [threading.Thread(target=start_server, args=(i,), daemon=True) for i in range(SERVERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a server's start did not finish"
    for db in databases:
        db.dispose()

    assert failures == []
    assert len(secrets) == SERVERS
    assert sum(secret is not None for secret in secrets) == 1  # one administrator key, made once
    engine = sa.create_engine(empty_postgres)
    try:
        assert migrate.current_revision(engine) in migrate.heads()
        with engine.connect() as connection:
            admins = connection.execute(
                sa.select(sa.func.count()).where(access_keys.c.client_id == ADMIN_CLIENT_ID)
            ).scalar_one()
        assert admins == 1
    finally:
        engine.dispose()
