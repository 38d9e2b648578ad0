"""First-start preparation: migrate, seed the catalog, create the administrator key."""

from __future__ import annotations

import logging

from workplane.auth import credentials
from workplane.domain.timefmt import now_ms
from workplane.settings import Settings
from workplane.store import catalog, migrate
from workplane.store.database import Database

log = logging.getLogger("workplane")

ADMIN_FILE = "admin-credentials.env"


def prepare_store(db: Database, settings: Settings, *, announce: bool = True) -> str | None:
    """Bring the store up to date. Returns the administrator secret when it was just created
    (it is also written, readable by the owner only, to ``<data_dir>/admin-credentials.env``)."""
    secret = None
    # Several servers starting at once on one PostgreSQL (a Deployment's replicas) take turns here.
    with db.preparing():
        if settings.migrate_on_start:
            migrate.upgrade(db.engine)
        with db.write() as connection:
            catalog.seed(connection, now_ms())
            if not credentials.has_admin(connection):
                secret = credentials.create_admin(connection, now_ms=now_ms())
    if secret is not None:
        path = settings.data_dir / ADMIN_FILE
        credentials.write_credential_file(path, credentials.ADMIN_CLIENT_ID, secret)
        if announce:
            print(
                "workplane: created the administrator access key (shown once; also saved to "
                f"{path}, mode 0600):\n"
                f"  client id:     {credentials.ADMIN_CLIENT_ID}\n"
                f"  client secret: {secret}",
                flush=True,
            )
    return secret
