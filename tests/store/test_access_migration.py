"""Migration 0008 turns the bootstrap key's role into an access rule, keeps every key's secret, and
goes back down."""

from __future__ import annotations

import hashlib
import os

import sqlalchemy as sa
from alembic import command

from workplane.auth.credentials import ADMIN_CLIENT_ID, authenticate
from workplane.auth.rules import Permission, load_access
from workplane.store import migrate


def _old_hash(secret: str) -> str:
    """A hash as written before 0007 (p=1): it must still verify."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt${2**14}$8$1${salt.hex()}${digest.hex()}"


def test_the_administrator_key_becomes_an_administrator_rule(empty_url: str) -> None:
    engine = sa.create_engine(empty_url)
    migrate.upgrade(engine, "0006")
    with engine.begin() as conn:
        for client_id, role in ((ADMIN_CLIENT_ID, "admin"), ("old-reader", "reader")):
            conn.execute(
                sa.text(
                    "INSERT INTO access_keys (client_id, name, secret_hash, role, created_at) "
                    "VALUES (:id, 'k', :hash, :role, 1)"
                ),
                {"id": client_id, "hash": _old_hash("s3cret"), "role": role},
            )
    migrate.upgrade(engine)
    with engine.begin() as conn:
        admin = load_access(conn, ADMIN_CLIENT_ID)
        assert admin is not None
        assert admin.allows(Permission.ACCESS_ADMIN)
        assert admin.scopes(Permission.WORKLOADS_READ).tenant
        reader = load_access(conn, "old-reader")
        assert reader is not None
        assert not reader.allows(Permission.WORKLOADS_READ)  # nothing until an administrator grants it
        assert authenticate(conn, ADMIN_CLIENT_ID, "s3cret") is not None
        assert authenticate(conn, ADMIN_CLIENT_ID, "wrong") is None

    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "0006")
    with engine.begin() as conn:
        roles = dict(conn.execute(sa.text("SELECT client_id, role FROM access_keys")).all())
    assert roles == {ADMIN_CLIENT_ID: "admin", "old-reader": "none"}
    engine.dispose()
