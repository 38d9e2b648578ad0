"""The dialect seam's write helpers, on both databases."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.factories import wid, workload
from workplane.domain.catalog import CatalogSnapshot
from workplane.settings import Settings
from workplane.store import workloads as store
from workplane.store.database import (
    Database,
    create_database,
    insert_rows,
    keys_present,
    rows_by_key,
    update_rows,
    upsert,
)
from workplane.store.schema import clusters, workload_counts, workload_history, workloads


def test_update_rows_sets_each_rows_own_values(database: Database) -> None:
    with database.write() as conn:
        conn.execute(
            clusters.insert(),
            [{"id": f"c{n}", "name": f"old-{n}", "last_sync_at": None} for n in range(5)],
        )
        # Row by row values, NULLs among them, and a key that matches nothing (changes nothing).
        update_rows(
            conn,
            clusters,
            [
                {"id": "c1", "name": "one", "last_sync_at": 10},
                {"id": "c3", "name": "three", "last_sync_at": None},
                {"id": "missing", "name": "x", "last_sync_at": 1},
            ],
        )
        update_rows(conn, clusters, [{"id": "c4", "last_sync_at": 2**53}])
        update_rows(conn, clusters, [])
    with database.read() as conn:
        found = {r.id: (r.name, r.last_sync_at) for r in conn.execute(sa.select(clusters))}
    assert found == {
        "c0": ("old-0", None),
        "c1": ("one", 10),
        "c2": ("old-2", None),
        "c3": ("three", None),
        "c4": ("old-4", 2**53),
    }


def test_update_rows_handles_every_column_type(database: Database, catalog: CatalogSnapshot) -> None:
    with database.write() as conn:
        ids = store.create_workloads(
            conn, [workload("a"), workload("b")], catalog=catalog, tenant_id=1, now_ms=0
        )
        update_rows(
            conn,
            workloads,
            [
                {
                    "id": ids[0],
                    "own_preemptible": True,
                    "allocated_gpu": 0.5,
                    "idle_gpus": 3,
                    "phase": "Pending",
                },
                {
                    "id": ids[1],
                    "own_preemptible": None,
                    "allocated_gpu": None,
                    "idle_gpus": None,
                    "phase": "Failed",
                },
            ],
        )
    with database.read() as conn:
        rows = {
            r.id: (r.own_preemptible, r.allocated_gpu, r.idle_gpus, r.phase)
            for r in conn.execute(sa.select(workloads))
        }
    assert rows == {str(wid("a")): (True, 0.5, 3, "Pending"), str(wid("b")): (None, None, None, "Failed")}


def test_update_rows_refuses_a_column_type_it_cannot_send(database: Database) -> None:
    table = sa.Table(
        "odd", sa.MetaData(), sa.Column("id", sa.Text, primary_key=True), sa.Column("j", sa.JSON)
    )
    if database.dialect != "postgresql":
        pytest.skip("only PostgreSQL sends columns as arrays")
    with database.write() as conn, pytest.raises(TypeError, match="no array type"):
        update_rows(conn, table, [{"id": "x", "j": {}}])


def test_insert_rows_and_rows_by_key(database: Database) -> None:
    rows = [{"id": f"c{n:04d}", "name": f"n{n}", "last_sync_at": n if n % 2 else None} for n in range(1203)]
    with database.write() as conn:
        insert_rows(conn, clusters, rows)
        # skip_existing: the rows already there stay as they are, the new one goes in.
        insert_rows(
            conn,
            clusters,
            [
                {"id": "c0001", "name": "changed", "last_sync_at": 0},
                {"id": "new", "name": "x", "last_sync_at": 1},
            ],
            skip_existing=True,
        )
        insert_rows(conn, clusters, [])
        # More keys than one SQLite IN list holds, unknown keys among them.
        found = rows_by_key(conn, clusters, [r["id"] for r in rows] + ["new", "unknown"])
        narrow = rows_by_key(conn, clusters, ["c0003", "new"], without=("name",))
    assert sorted(found, key=lambda r: r["id"]) == [*rows, {"id": "new", "name": "x", "last_sync_at": 1}]
    assert sorted(narrow, key=lambda r: r["id"]) == [
        {"id": "c0003", "last_sync_at": 3},
        {"id": "new", "last_sync_at": 1},
    ]


def test_upsert_inserts_new_rows_and_sets_the_named_columns_of_stored_ones(database: Database) -> None:
    """On PostgreSQL all the rows go in one statement (an executemany ran one per row, each firing the
    statement triggers); rows that repeat a key go one at a time, the later one's values winning, as
    one statement cannot touch a row twice."""
    sent: list[tuple[str, bool]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, many: bool) -> None:
        if statement.startswith("INSERT INTO clusters"):
            sent.append((statement, many))

    with database.write() as conn:
        stored = [{"id": f"c{n}", "name": f"old-{n}", "last_sync_at": 1} for n in range(2)]
        insert_rows(conn, clusters, stored)
    sa.event.listen(database.engine, "before_cursor_execute", capture)
    try:
        with database.write() as conn:
            rows = [{"id": f"c{n}", "name": f"new-{n}", "last_sync_at": 10 + n} for n in range(1, 700)]
            upsert(conn, clusters, rows, ["last_sync_at"])
            one_statement = list(sent)
            upsert(conn, clusters, [], ["name"])  # nothing to write: no statement
            assert sent == one_statement
            upsert(
                conn,
                clusters,
                [
                    {"id": "twice", "name": "first", "last_sync_at": 1},
                    {"id": "twice", "name": "second", "last_sync_at": 2},
                    {"id": "c0", "name": "new-0", "last_sync_at": None},
                ],
                ["name", "last_sync_at"],
            )
    finally:
        sa.event.remove(database.engine, "before_cursor_execute", capture)
    with database.read() as conn:
        found = {r.id: (r.name, r.last_sync_at) for r in conn.execute(sa.select(clusters))}
    assert found == {
        "c0": ("new-0", None),
        "c1": ("old-1", 11),  # stored: only the named column changes
        **{f"c{n}": (f"new-{n}", 10 + n) for n in range(2, 700)},
        "twice": ("second", 2),
    }
    if database.dialect == "postgresql":
        assert [many for _statement, many in one_statement] == [False]
        assert "unnest" in one_statement[0][0]


def test_keys_present_finds_the_keys_of_rows_meeting_the_conditions(database: Database) -> None:
    rows = [{"id": f"c{n:04d}", "name": f"n{n % 3}", "last_sync_at": n} for n in range(1203)]
    # More keys than one SQLite IN list holds, unknown and repeated keys among them.
    asked = [r["id"] for r in rows] + ["unknown", "c0004"]
    with database.write() as conn:
        insert_rows(conn, clusters, rows)
        every = keys_present(conn, clusters, "id", asked)
        named = keys_present(conn, clusters, "id", asked, name="n1")
        both = keys_present(conn, clusters, "id", ["c0001", "c0004", "c0007"], name="n1", last_sync_at=4)
        none = keys_present(conn, clusters, "id", [])
    assert every == {r["id"] for r in rows}
    assert named == {r["id"] for r in rows if r["name"] == "n1"}
    assert both == {"c0004"}
    assert none == set()


def test_insert_rows_quotes_reserved_column_names(database: Database, catalog: CatalogSnapshot) -> None:
    with database.write() as conn:
        (workload_id,) = store.create_workloads(conn, [workload("a")], catalog=catalog, tenant_id=1, now_ms=0)
        entry = {"workload_id": workload_id, "revision": 1, "at_ms": 5, "phase": "Running", "values": "{}"}
        insert_rows(conn, workload_history, [entry])
        insert_rows(conn, workload_history, [{**entry, "at_ms": 6}], skip_existing=True)
        stored = conn.execute(sa.select(workload_history)).mappings().all()
    assert [dict(r) for r in stored] == [entry]
    with pytest.raises(sa.exc.IntegrityError), database.write() as conn:
        insert_rows(conn, workload_history, [entry])


def test_background_checkpoints_leave_the_log_to_their_owner(tmp_path: Path) -> None:
    """With background checkpoints no commit copies the log into the database file (the writer does
    not wait for it); ``Database.checkpoint`` does, while the data stays readable throughout."""
    settings = Settings(data_dir=tmp_path)
    db = create_database(settings, background_checkpoints=True)
    path = tmp_path / "workplane.db"

    def in_database_file() -> int:
        # immutable=1: the main file alone, as if the write-ahead log did not exist.
        with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as raw:
            return int(raw.execute("SELECT count(*) FROM clusters").fetchone()[0])

    try:
        with db.write() as conn:
            conn.execute(sa.text("CREATE TABLE clusters (id TEXT PRIMARY KEY, name TEXT)"))
        db.checkpoint()
        with db.write() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
            for start in range(0, 20_000, 1_000):  # ~20 MiB of log: past SQLite's default trigger
                conn.execute(
                    sa.text("INSERT INTO clusters VALUES (:id, :name)"),
                    [{"id": f"c{n}", "name": "x" * 900} for n in range(start, start + 1_000)],
                )
        assert in_database_file() == 0
        with db.read() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM clusters")).scalar_one() == 20_000
        db.checkpoint()
        assert in_database_file() == 20_000
    finally:
        db.dispose()


def test_add_on_conflict_adds_to_stored_counters(database: Database) -> None:
    first = [
        {
            "key": "a",
            "cluster_id": "c",
            "department_id": "d",
            "department_name": "D",
            "project_id": "p",
            "project_name": "P",
            "type": "Training",
            "phase": "Running",
            "own_category": None,
            "own_priority": None,
            "n": 2,
            "gpu_micro": 500_000,
        },
    ]
    with database.write() as conn:
        database.sql.add_on_conflict(conn, workload_counts, first, key="key", sums=("n", "gpu_micro"))
        database.sql.add_on_conflict(
            conn,
            workload_counts,
            [{**first[0], "n": -1, "gpu_micro": 250_000}, {**first[0], "key": "b", "n": 1, "gpu_micro": 0}],
            key="key",
            sums=("n", "gpu_micro"),
        )
        database.sql.add_on_conflict(conn, workload_counts, [], key="key", sums=("n",))
    with database.read() as conn:
        found = {r.key: (r.n, r.gpu_micro) for r in conn.execute(sa.select(workload_counts))}
    assert found == {"a": (1, 750_000), "b": (1, 0)}


def test_a_sqlite_writer_waits_for_the_write_lock_then_takes_it(tmp_path: Path) -> None:
    """A second writer waits (no error) while another holds SQLite's write lock, starts once it is
    released (it sees what the first committed), and after ``db_busy_timeout_ms`` gives up with the
    error the API turns into 503; the connection's own busy timeout is as configured afterwards."""
    settings = Settings(data_dir=tmp_path, db_busy_timeout_ms=5000)
    db = create_database(settings)
    try:
        with db.write() as conn:
            conn.execute(sa.text("CREATE TABLE t (n INTEGER)"))
        holding, release = threading.Event(), threading.Event()

        def first() -> None:
            with db.write() as conn:
                conn.execute(sa.text("INSERT INTO t VALUES (1)"))
                holding.set()
                release.wait(timeout=10)

        thread = threading.Thread(target=first)
        thread.start()
        assert holding.wait(timeout=10)
        threading.Timer(0.3, release.set).start()
        with db.write() as conn:  # waits for the first writer's commit
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 5000
        thread.join(timeout=10)
    finally:
        db.dispose()

    impatient = create_database(Settings(data_dir=tmp_path, db_busy_timeout_ms=100))
    other = sqlite3.connect(tmp_path / "workplane.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sa.exc.OperationalError, match="locked"), impatient.write():
            pass
        other.execute("COMMIT")
        with impatient.write() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 100
    finally:
        other.close()
        impatient.dispose()


def test_a_read_transaction_reads_one_snapshot(database: Database) -> None:
    """Every statement of a read transaction sees the store as it was at its first: a page read in
    parts, or a count summed over sets, cannot count a row twice or miss one that a writer moved
    meanwhile (PostgreSQL's default gives each statement a snapshot of its own)."""
    with database.write() as conn:
        conn.execute(sa.text("CREATE TABLE snapshot_probe (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO snapshot_probe VALUES (1)"))
    count = sa.text("SELECT count(*) FROM snapshot_probe")
    try:
        with database.read() as reader:
            assert reader.execute(count).scalar_one() == 1
            with database.write() as writer:
                writer.execute(sa.text("INSERT INTO snapshot_probe VALUES (2)"))
            assert reader.execute(count).scalar_one() == 1
        with database.read() as reader:
            assert reader.execute(count).scalar_one() == 2
    finally:
        with database.write() as conn:
            conn.execute(sa.text("DROP TABLE snapshot_probe"))
