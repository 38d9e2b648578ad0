"""The inventory of ``inventory.py``, loaded once per test module and backend, with an API client.

Read-only tests share it: loading it per test would dominate the run time of the case tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tests.conftest import _wipe, admin_client
from tests.query.inventory import load_inventory
from workplane.app import build_services
from workplane.domain.catalog import CatalogSnapshot
from workplane.services.setup import prepare_store
from workplane.settings import Settings
from workplane.store.database import Database, create_database


@dataclass
class Loaded:
    db: Database
    catalog: CatalogSnapshot
    client: TestClient


@pytest.fixture(scope="module")
def inventory(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    # No retention task: the inventory's deleted workloads are older than the retention period.
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("inventory"),
        database_url=backend_url,
        migrate_on_start=False,
        retention_interval_s=0,
    )
    db = create_database(settings)
    _wipe(db)
    prepare_store(db, settings, announce=False)
    services = build_services(settings, db)
    with db.read() as conn:
        catalog = services.catalog.get(conn)
    load_inventory(db, catalog)
    with admin_client(settings, services) as client:
        yield Loaded(db, catalog, client)
    db.dispose()
