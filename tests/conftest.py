"""Shared fixtures. Store-touching tests run once on SQLite and once on PostgreSQL.

PostgreSQL comes from ``WORKPLANE_TEST_POSTGRES_URL`` (e.g. postgresql+psycopg://postgres@127.0.0.1/test);
the suite creates its own throw-away database next to it. Without the variable the PostgreSQL half
is skipped (``.ci/run`` always sets it).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coverage
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from runai.api_client import ApiClient
from runai.configuration import Configuration
from runai.runai_client import RunaiClient

from tests import file_weights
from tests.light_hashing import LIGHT_SCRYPT
from tests.server import Server, running_server
from workplane.api.deps import Services
from workplane.app import build_services, create_app
from workplane.auth import credentials
from workplane.auth.credentials import ADMIN_CLIENT_ID
from workplane.domain.catalog import CatalogSnapshot
from workplane.services.setup import ADMIN_FILE, prepare_store
from workplane.settings import Settings
from workplane.store import migrate
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database, create_database
from workplane.store.schema import catalog_state, metadata

POSTGRES_URL = os.environ.get("WORKPLANE_TEST_POSTGRES_URL")

# Access-key secrets are hashed with scrypt at OWASP's strength, 0.1–0.2 CPU-s per hash or check,
# and nearly every test pays for an administrator key and a token: minutes of the suite. In this
# process tests hash at the smallest work scrypt takes (N=16: 0.06 ms a hash, against 2.6 ms at the
# N=2^10 used before and 100 ms at full strength); a stored hash names its own parameters, so checking
# works the same. Servers the tests start as processes hash the same way (``tests/light_hashing.py``)
# unless started with ``strong_hashing=True``; a test in this process that asks for
# ``strong_hashing`` gets the real strength (where the cost itself is what is tested);
# ``tests/auth/test_security.py`` checks that the server's own default is the strong one.
STRONG_SCRYPT = (credentials._N, credentials._R, credentials._P)
credentials._N, credentials._R, credentials._P = LIGHT_SCRYPT


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The longest files first, so the parallel run does not end with one worker on a long file
    # (tests/file_weights.py; ./scripts/test turns off pytest-xdist's own reordering).
    items[:] = file_weights.longest_first(items, file_weights.load())
    for item in items:
        if _postgresql_half(item) and not item.nodeid.startswith(TRACED_ON_BOTH):
            item.add_marker(pytest.mark.no_cover)


# Coverage on Python 3.11 traces every line it runs and slows it by half again (CONTRIBUTING: "Where
# the CPU goes"). A test parametrized over both stores runs the same Python on each but for the
# dialect (``store/dialects``), which the store's own tests exercise on both; so outside them the
# PostgreSQL half runs untraced, and the report measures the SQLite half and every store test.
TRACED_ON_BOTH = ("tests/store/",)


def _postgresql_half(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return "postgresql" in (params.get("backend_url"), params.get("empty_url"))


@contextmanager
def _untraced(item: pytest.Item) -> Iterator[None]:
    """No coverage tracing while ``item``'s fixtures are made or torn down, where it is ``no_cover``
    (pytest-cov pauses the test's own call only)."""
    tracer = coverage.Coverage.current() if item.get_closest_marker("no_cover") else None
    if tracer is not None:
        tracer.stop()
    try:
        yield
    finally:
        if tracer is not None:
            tracer.start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _untraced(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    with _untraced(item):
        yield


@pytest.fixture
def strong_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in zip(("_N", "_R", "_P"), STRONG_SCRYPT, strict=True):
        monkeypatch.setattr(credentials, name, value)
    credentials._dummy_hash.cache_clear()  # the stand-in for unknown ids, at the strength in force
    yield
    credentials._dummy_hash.cache_clear()


BACKENDS = ["sqlite", "postgresql"]


def _fresh_postgres(base_url: str) -> tuple[str, str]:
    name = f"workplane_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        # A test's commit need not wait for its WAL to reach the disk (a crash loses a throwaway
        # database, never its consistency); every connection to it, a test server's too, commits so.
        # Three store files' PostgreSQL half: 5.8–6.7 s of pytest with the flush, 5.4–5.5 s without.
        conn.execute(sa.text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    admin.dispose()
    return str(sa.make_url(base_url).set(database=name).render_as_string(hide_password=False)), name


def _drop_postgres(base_url: str, name: str) -> None:
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty store per backend for the whole session."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "workplane.db"
        url = f"sqlite:///{path}"
        cleanup = None
    else:
        if not POSTGRES_URL:
            pytest.skip("WORKPLANE_TEST_POSTGRES_URL is not set")
        url, name = _fresh_postgres(POSTGRES_URL)
        cleanup = name
    engine = sa.create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    if cleanup is not None and POSTGRES_URL:
        _drop_postgres(POSTGRES_URL, cleanup)


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store never migrated, per backend: a SQLite file not yet there, a PostgreSQL database of its
    own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("WORKPLANE_TEST_POSTGRES_URL is not set")
    url, name = _fresh_postgres(POSTGRES_URL)
    yield url
    _drop_postgres(POSTGRES_URL, name)


@pytest.fixture
def settings(tmp_path: Path, backend_url: str) -> Settings:
    # No background purge: tests that load old deletions must not race with it. Sync batches are
    # applied in the server process (tests/api/test_store_workers.py covers the worker processes).
    return Settings(
        data_dir=tmp_path / "data",
        database_url=backend_url,
        migrate_on_start=False,
        retention_interval_s=0,
        sync_processes=0,
    )


def _wipe(db: Database) -> None:
    tables = [table.name for table in reversed(metadata.sorted_tables)]
    with db.write() as conn:
        if conn.dialect.name == "postgresql":
            # One round trip for all of them (statements without parameters go by the simple query
            # protocol, which takes several): 7.5-8.1 -> 1.3 ms a test, timed alone.
            conn.exec_driver_sql("; ".join(f'DELETE FROM "{name}"' for name in tables))
            return
        for name in tables:
            conn.exec_driver_sql(f'DELETE FROM "{name}"')


# One engine per store and engine settings for the whole worker process. A fresh engine per test opened
# its connections again (on PostgreSQL a new server process each, whose catalog caches start cold) and
# compiled every statement again (SQLAlchemy caches compiled SQL per engine): on a sample of the
# PostgreSQL half, 104-110 s with an engine per test, 67-80 s with one per worker.
_ENGINES: dict[tuple[str, int, int], sa.Engine] = {}


def _shared_database(settings: Settings) -> Database:
    key = (settings.sqlalchemy_url, settings.db_pool_size, settings.db_busy_timeout_ms)
    if key not in _ENGINES:
        _ENGINES[key] = create_database(settings).engine
    return Database(_ENGINES[key], settings.query_timeout_ms)


@pytest.fixture
def database(settings: Settings) -> Database:
    """The session's store, emptied for this test (on the worker's engine for it: the connections stay
    open between tests)."""
    db = _shared_database(settings)
    _wipe(db)
    return db


@pytest.fixture
def services(settings: Settings, database: Database) -> Services:
    prepare_store(database, settings, announce=False)
    return build_services(settings, database)


@pytest.fixture
def catalog(services: Services) -> CatalogSnapshot:
    with services.db.read() as conn:
        return services.catalog.get(conn)


def read_admin_secret(data_dir: Path) -> str:
    """The administrator secret the first start wrote into the data directory."""
    for line in (data_dir / ADMIN_FILE).read_text().splitlines():
        if line.startswith("WORKPLANE_CLIENT_SECRET="):
            return line.split("=", 1)[1]
    raise AssertionError("no admin secret written")


@contextmanager
def admin_client(settings: Settings, services: Services) -> Iterator[TestClient]:
    """An in-process client already holding an administrator token."""
    with TestClient(create_app(settings, services), raise_server_exceptions=False) as test_client:
        answer = test_client.post(
            "/api/v1/token",
            json={
                "grantType": "client_credentials",
                "clientId": ADMIN_CLIENT_ID,
                "clientSecret": read_admin_secret(settings.data_dir),
            },
        )
        assert answer.status_code == 200, answer.text
        test_client.headers["Authorization"] = f"Bearer {answer.json()['accessToken']}"
        yield test_client


@pytest.fixture
def admin_secret(settings: Settings, services: Services) -> str:
    return read_admin_secret(settings.data_dir)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    """An in-process client already holding an administrator token."""
    with admin_client(services.settings, services) as test_client:
        yield test_client


@pytest.fixture
def anonymous(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services.settings, services), raise_server_exceptions=False) as test_client:
        yield test_client


def fresh_cache() -> CatalogCache:
    return CatalogCache()


@pytest.fixture
def server(
    settings: Settings, database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Server]:
    """A real server process on this test's (emptied) store; its first start seeds it. It hashes
    secrets at full strength where the test asks for ``strong_hashing`` too. In a module marked
    ``shared_server``, the module's one server on the test's emptied and seeded store instead."""
    if request.node.get_closest_marker("shared_server"):
        yield request.getfixturevalue("shared_server")
        return
    strong = "strong_hashing" in request.fixturenames
    with running_server(tmp_path / "server", settings.sqlalchemy_url, strong_hashing=strong) as running:
        yield running


@dataclass
class _ModuleServer:
    server: Server
    # Every row of the store as the server's first start left it (the catalog, the administrator's
    # key and rule), to put back after each test's emptying of the store.
    seeded: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def _module_server(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ModuleServer]:
    data_dir = tmp_path_factory.mktemp("module-server")
    db = _shared_database(Settings(data_dir=data_dir, database_url=backend_url, sync_processes=0))
    _wipe(db)
    with running_server(data_dir / "server", backend_url) as running:
        with db.read() as conn:
            seeded = {
                table.name: [dict(row._mapping) for row in conn.execute(table.select())]
                for table in metadata.sorted_tables
            }
        yield _ModuleServer(running, seeded)


# The catalog version each test's store starts at: never one a server of this process has seen, so
# that its catalog cache (``CatalogCache``, which reloads when the version moved) holds nothing of a
# test before. A test moves it by one per change of the catalog.
_CATALOG_VERSIONS = itertools.count(1_000_000, 1_000_000)


@pytest.fixture
def shared_server(_module_server: _ModuleServer, database: Database) -> Server:
    """One server process for the tests of a module on a store (a start costs about a CPU-second,
    most of it imports), each test on an emptied store with the server's seeded rows put back, as
    ``server`` gives them. What the server keeps in memory stays consistent: its catalog cache by the
    version above, its access cache by the access keys and rules, which tests change only through
    its API (which clears it), and nothing else of a store is held between requests. ``server`` is
    this one in the modules marked ``shared_server``, whose tests need nothing else of a fresh process
    (and make no in-process app on the same store: ``services`` would create an administrator key of
    its own first)."""
    _wipe(database)  # again: the module's first test empties the store before its server starts
    with database.write() as conn:
        for table in metadata.sorted_tables:
            if rows := _module_server.seeded[table.name]:
                conn.execute(table.insert(), rows)
        conn.execute(catalog_state.update().values(version=next(_CATALOG_VERSIONS)))
    return _module_server.server


@pytest.fixture
def runai(server: Server) -> Iterator[RunaiClient]:
    """The official client, unmodified, holding the server's administrator key."""
    configuration = Configuration(
        client_id=server.client_id, client_secret=server.client_secret, runai_base_url=server.base_url
    )
    client = RunaiClient(ApiClient(configuration))
    yield client
    client.close()
