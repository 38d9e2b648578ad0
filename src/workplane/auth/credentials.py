"""Access keys: a client id and a secret shown once and stored only as a salted scrypt hash."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from workplane.store.schema import access_keys

# scrypt with N=2^14, r=8, p=1: ~16 MiB and tens of milliseconds per check — slow for an attacker,
# bearable for a token endpoint that clients call once an hour.
_N, _R, _P = 2**14, 8, 1
ADMIN_CLIENT_ID = "workplane-admin"
ADMIN_ROLE = "admin"


def hash_secret(secret: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_secret(secret: str, stored: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(
        secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(candidate, bytes.fromhex(digest))


@functools.cache
def _dummy_hash() -> str:
    """Checked against for unknown client ids, so an unknown id costs the same time as a wrong secret."""
    return hash_secret(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str
    role: str


def authenticate(connection: sa.Connection, client_id: str, secret: str) -> Principal | None:
    if "\x00" in client_id:  # no key has one, and PostgreSQL refuses NUL in a text parameter
        check_secret(secret, _dummy_hash())
        return None
    row = connection.execute(
        sa.select(access_keys.c.secret_hash, access_keys.c.role).where(
            access_keys.c.client_id == client_id, access_keys.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        check_secret(secret, _dummy_hash())
        return None
    if not check_secret(secret, row.secret_hash):
        return None
    return Principal(client_id, row.role)


def has_admin(connection: sa.Connection) -> bool:
    found = connection.execute(
        sa.select(access_keys.c.client_id).where(access_keys.c.client_id == ADMIN_CLIENT_ID)
    ).first()
    return found is not None


def create_admin(connection: sa.Connection, *, now_ms: int) -> str:
    """Create the administrator key and return its secret (the only time it is known in clear)."""
    secret = secrets.token_urlsafe(24)
    connection.execute(
        access_keys.insert().values(
            client_id=ADMIN_CLIENT_ID,
            name="administrator (created on first start)",
            secret_hash=hash_secret(secret),
            role=ADMIN_ROLE,
            created_at=now_ms,
        )
    )
    return secret


def write_credential_file(path: Path, client_id: str, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"WORKPLANE_CLIENT_ID={client_id}\nWORKPLANE_CLIENT_SECRET={secret}\n")
    os.chmod(path, 0o600)
