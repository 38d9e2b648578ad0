"""Every file the server keeps in its data directory is readable by its owner only (0600, the directory
0700), whatever the umask: the SQLite store and its WAL, the signing keys, the administrator's secret,
the replay's state. A store left world-readable by an older version is tightened when it is opened."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.server import running_server
from workplane.auth.tokens import rotate_signing_key
from workplane.settings import load_settings
from workplane.store.database import create_database

LOG = "server.log"  # the test harness's own capture of the server's output, not the server's file


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The umask most machines have: files 0644 and directories 0755 unless made otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _loose_files(data_dir: Path) -> dict[str, str]:
    return {
        str(path.relative_to(data_dir)): oct(_mode(path))
        for path in sorted(data_dir.rglob("*"))
        if path.name != LOG and _mode(path) != (0o700 if path.is_dir() else 0o600)
    }


def test_a_running_server_keeps_every_data_file_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as server:
        # The server has migrated the store, made its signing key and the administrator's secret;
        # a token makes it sign (and audit) while it runs, so the WAL files exist too.
        server.token()
        names = {path.name for path in data_dir.rglob("*")}
        assert {"workplane.db", "workplane.db-wal", "signing.key", "admin-credentials.env"} <= names
        assert _loose_files(data_dir) == {}
    rotate_signing_key(data_dir, keep_s=60)  # the CLI's `access-key rotate-signing-key` path
    assert _loose_files(data_dir) == {}


def test_a_new_data_directory_is_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    database = create_database(load_settings(data_dir=data_dir))
    try:
        with database.write() as connection:
            connection.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    finally:
        database.engine.dispose()
    assert _mode(data_dir) == 0o700
    assert _mode(data_dir / "workplane.db") == 0o600
    assert _loose_files(data_dir) == {}


def test_a_world_readable_store_is_tightened_when_opened(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    sqlite3.connect(data_dir / "workplane.db").close()  # made under the umask: 0644
    assert _mode(data_dir / "workplane.db") == 0o644
    database = create_database(load_settings(data_dir=data_dir))
    try:
        with database.read() as connection:
            connection.execute(sa.text("SELECT 1"))
    finally:
        database.engine.dispose()
    assert _mode(data_dir / "workplane.db") == 0o600
