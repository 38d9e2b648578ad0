"""Where the inventory lives (SQLite file, PostgreSQL database) and how it gets there: through the
store's own functions (``prepare_store``, ``create_workloads``, ``delete_workload``) in batches, one
write transaction per batch."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.inventory import Plan, Progress, batches, workload_fields
from workplane.domain.record import WorkloadIn
from workplane.services.setup import prepare_store
from workplane.settings import Settings
from workplane.store import migrate
from workplane.store import workloads as store
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database, create_database
from workplane.store.schema import workloads

SQLITE, POSTGRESQL = "sqlite", "postgresql"
DEFAULT_SIZE = 1_000_000
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_PG_DATABASE = "workplane_bench"
TENANT_ID = 1


@dataclass(frozen=True)
class Target:
    kind: str  # SQLITE or POSTGRESQL
    data_dir: Path  # the server's --data-dir: SQLite file, signing key, admin credential
    url: str  # SQLAlchemy URL of the store
    pg_admin_url: str | None = None  # a database to connect to for CREATE/DROP DATABASE
    pg_database: str | None = None

    @property
    def label(self) -> str:
        return "SQLite" if self.kind == SQLITE else "PostgreSQL"

    @property
    def database_url_flag(self) -> str | None:
        """What ``workplane serve --database-url`` needs (None: SQLite in the data directory)."""
        return self.url if self.kind == POSTGRESQL else None

    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, database_url=self.url, migrate_on_start=True)


def make_target(kind: str, *, size: int, out_dir: Path, pg_url: str, pg_database: str | None) -> Target:
    if kind == SQLITE:
        data_dir = (out_dir / f"sqlite-{size}").resolve()
        return Target(SQLITE, data_dir, f"sqlite:///{data_dir / 'workplane.db'}")
    name = pg_database or (DEFAULT_PG_DATABASE if size == DEFAULT_SIZE else f"{DEFAULT_PG_DATABASE}_{size}")
    url = sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    return Target(
        POSTGRESQL, (out_dir / f"postgresql-{size}").resolve(), url, pg_admin_url=pg_url, pg_database=name
    )


def open_database(target: Target) -> Database:
    return create_database(target.settings(), target.url)


# --- creating and wiping the store ----------------------------------------------------------------


def _pg_admin(target: Target) -> sa.Engine:
    assert target.pg_admin_url is not None
    return sa.create_engine(target.pg_admin_url, isolation_level="AUTOCOMMIT")


def ensure_exists(target: Target) -> None:
    target.data_dir.mkdir(parents=True, exist_ok=True)
    if target.kind != POSTGRESQL:
        return
    engine = _pg_admin(target)
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.pg_database}
        ).first()
        if found is None:
            conn.execute(sa.text(f'CREATE DATABASE "{target.pg_database}"'))
    engine.dispose()


def wipe(target: Target) -> None:
    """Remove the store (and the admin credential that goes with it)."""
    if target.kind == POSTGRESQL:
        engine = _pg_admin(target)
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.pg_database}" WITH (FORCE)'))
        engine.dispose()
    if target.data_dir.exists():
        shutil.rmtree(target.data_dir)
    ensure_exists(target)


# --- is the inventory already there? ---------------------------------------------------------------


def inventory_state(db: Database, plan: Plan) -> tuple[bool, str]:
    """(present, why): the store holds exactly this inventory (row count and its first and last ids)."""
    with db.read() as conn:
        rows = int(conn.execute(sa.select(sa.func.count()).select_from(workloads)).scalar_one())
        if rows == 0:
            return False, "the store is empty"
        if rows != plan.size:
            return False, f"the store holds {rows:,} workloads, not {plan.size:,}"
        for item in (plan.items[0], plan.items[-1]):
            found = conn.execute(
                sa.select(workloads.c.name, workloads.c.deleted_at).where(workloads.c.id == str(item.id))
            ).first()
            expected_deleted = item.deleted_s * 1000 if item.deleted_s is not None else None
            if found is None or found.name != item.name or found.deleted_at != expected_deleted:
                return False, f"workload {item.id} is missing or differs: not this inventory"
    return True, f"already holds the {plan.size:,}-workload inventory"


@dataclass
class LoadResult:
    target: str
    rows: int
    skipped: bool
    seconds: float  # load time (0 when skipped)
    rows_per_s: float
    finish_seconds: float  # VACUUM ANALYZE / WAL checkpoint after the load
    store_bytes: int
    note: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def store_bytes(target: Target, db: Database) -> int:
    if target.kind == SQLITE:
        return sum(p.stat().st_size for p in target.data_dir.glob("workplane.db*"))
    with db.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())


def _finish(target: Target, db: Database) -> None:
    if target.kind == POSTGRESQL:
        # What autovacuum would do a little later; done now so the plans and the visibility map
        # (index-only scans for counts) do not depend on when autovacuum happens to run.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def load(target: Target, plan: Plan, *, batch_size: int, force: bool) -> LoadResult:
    """Load the inventory into ``target`` unless it is already there (or ``force``)."""
    print(f"== {target.label}: {target.url}", flush=True)
    if force:
        print("  --force-reload: wiping the store", flush=True)
        wipe(target)
    ensure_exists(target)
    db = open_database(target)
    try:
        # Check before migrating: a store that holds something else is wiped, not migrated first.
        revision = migrate.current_revision(db.engine)
        present, why = inventory_state(db, plan) if revision is not None else (False, "the store is empty")
        if not present and why != "the store is empty":
            print(f"  {why}: wiping and loading again", flush=True)
            db.dispose()
            wipe(target)
            db = open_database(target)
        heads = migrate.heads()
        if present and revision not in heads:
            print(f"  migrating the loaded store from schema {revision} to {', '.join(heads)}", flush=True)
        prepare_store(db, target.settings(), announce=False)
        if present:
            print(f"  {why}: not loading (--force-reload to load again)", flush=True)
            return LoadResult(
                target.label, plan.size, True, 0.0, 0.0, 0.0, store_bytes(target, db), "skipped: " + why
            )
        head = migrate.current_revision(db.engine)
        print(
            f"  loading {plan.size:,} workloads (schema {head}), {batch_size:,} per transaction", flush=True
        )
        progress = Progress(target.label, plan.size)
        cache = CatalogCache()
        now = plan.snapshot_s * 1000
        analyzed_at = 0
        for batch in batches(plan.items, batch_size):
            records = [WorkloadIn.model_validate(workload_fields(p)) for p in batch]
            with db.write() as conn:
                catalog = cache.get(conn)
                store.create_workloads(conn, records, catalog=catalog, tenant_id=TENANT_ID, now_ms=now)
                for p in batch:
                    if p.deleted_s is not None:
                        store.delete_workload(conn, str(p.id), deleted_at_ms=p.deleted_s * 1000)
            progress.add(len(batch))
            if target.kind == POSTGRESQL and progress.done >= max(20_000, 2 * analyzed_at):
                # The count triggers' statements are planned from the statistics of a table that was
                # empty at the start (a scan of ``workloads`` per batch); autovacuum catches up only
                # minutes later. Fresh statistics as the table grows keep the load rate flat.
                with db.write() as conn:
                    conn.execute(sa.text("ANALYZE"))
                analyzed_at = progress.done
        seconds = progress.elapsed
        started = time.perf_counter()
        print("  finishing (PostgreSQL: VACUUM ANALYZE; SQLite: WAL checkpoint)", flush=True)
        _finish(target, db)
        finish = time.perf_counter() - started
        size = store_bytes(target, db)
        print(
            f"  loaded {plan.size:,} workloads in {seconds:.1f} s ({plan.size / seconds:,.0f} rows/s), "
            f"finish {finish:.1f} s, store {size / 2**20:,.0f} MiB",
            flush=True,
        )
        return LoadResult(
            target.label, plan.size, False, seconds, plan.size / seconds, finish, size, "loaded"
        )
    finally:
        db.dispose()
