"""Access keys: a client id and a secret shown once and stored only as a salted scrypt hash.

Keys are created, listed, rotated (a new secret, same client id and rules) and revoked (at once: the
key's tokens stop working within the access cache's lifetime). What a key may do is in its access
rules (``auth.rules``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from workplane.auth.rules import TENANT_SCOPE_ID, grant
from workplane.domain.roles import KeyKind, Role
from workplane.domain.scopes import Scope, ScopeType
from workplane.files import write_private
from workplane.store.schema import access_keys

# scrypt N=2^14, r=8, p=5: 16 MiB and five times the work of p=1 per check, one of OWASP's
# recommended scrypt settings (equivalent in strength to N=2^17, r=8, p=1, with an eighth of the
# memory, which matters when several token requests run at once). The parameters are stored with each
# hash, so keys hashed under older parameters keep working.
_N, _R, _P = 2**14, 8, 5
_MAXMEM = 64 * 1024 * 1024
ADMIN_CLIENT_ID = "workplane-admin"
# The token ``role`` claim of the bootstrap key. Informational only: authorisation reads access rules.
ADMIN_ROLE = Role.ADMINISTRATOR.value
CLIENT_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{2,127}$"


def hash_secret(secret: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_secret(secret: str, stored: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")
    candidate = hashlib.scrypt(
        secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32, maxmem=_MAXMEM
    )
    return hmac.compare_digest(candidate, bytes.fromhex(digest))


@functools.cache
def _dummy_hash() -> str:
    """Checked against for unknown client ids, so an unknown id costs the same time as a wrong secret."""
    return hash_secret(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presented a valid access key: the client id and its key kind (the token's ``role`` claim)."""

    client_id: str
    role: str


def authenticate(connection: sa.Connection, client_id: str, secret: str) -> Principal | None:
    """The key's owner when the secret is right. Every path — unknown id, revoked key, wrong secret,
    right secret — runs exactly one scrypt check, so timing tells nothing about which it was."""
    row = None
    if "\x00" not in client_id:  # no key has one, and PostgreSQL refuses NUL in a text parameter
        row = connection.execute(
            sa.select(access_keys.c.secret_hash, access_keys.c.kind, access_keys.c.revoked_at).where(
                access_keys.c.client_id == client_id
            )
        ).first()
    usable = row is not None and row.revoked_at is None
    matches = check_secret(secret, row.secret_hash if usable and row is not None else _dummy_hash())
    if not (usable and matches) or row is None:
        return None
    return Principal(client_id, row.kind)


class AccessKeyError(ValueError):
    """A key operation that cannot be done (duplicate id, bad kind/cluster combination...)."""


@dataclass(frozen=True, slots=True)
class NewKey:
    client_id: str
    secret: str


def _new_secret() -> str:
    """256 random bits, URL-safe, never starting with "-": every command line takes a secret as
    ``--client-secret SECRET``, where argparse reads a value starting with "-" as an option and refuses
    it (one key in 64 otherwise)."""
    secret = secrets.token_urlsafe(32)
    while secret.startswith("-"):
        secret = secrets.token_urlsafe(32)
    return secret


def create_key(
    connection: sa.Connection,
    *,
    kind: KeyKind,
    name: str,
    by: str,
    now_ms: int,
    client_id: str | None = None,
    cluster_id: str | None = None,
) -> NewKey:
    """A new key. An agent key is bound to ``cluster_id`` and gets the cluster-agent role there."""
    if kind is KeyKind.AGENT and not cluster_id:
        raise AccessKeyError("an agent key needs the cluster it reports for")
    if kind is not KeyKind.AGENT and cluster_id:
        raise AccessKeyError("only agent keys are bound to a cluster")
    client_id = client_id or f"{kind.value}-{secrets.token_hex(8)}"
    if not re.fullmatch(CLIENT_ID_PATTERN, client_id):
        raise AccessKeyError(f"client id {client_id!r} must match {CLIENT_ID_PATTERN}")
    exists = connection.execute(
        sa.select(access_keys.c.client_id).where(access_keys.c.client_id == client_id)
    ).first()
    if exists is not None:
        raise AccessKeyError(f"access key {client_id} already exists")
    secret = _new_secret()
    connection.execute(
        access_keys.insert().values(
            client_id=client_id,
            name=name,
            secret_hash=hash_secret(secret),
            kind=kind.value,
            cluster_id=cluster_id,
            created_at=now_ms,
            created_by=by,
        )
    )
    if kind is KeyKind.AGENT and cluster_id:
        grant(
            connection,
            client_id,
            Role.CLUSTER_AGENT,
            Scope(ScopeType.CLUSTER, cluster_id),
            by=by,
            now_ms=now_ms,
        )
    return NewKey(client_id, secret)


def rotate_key(connection: sa.Connection, client_id: str, *, now_ms: int) -> str | None:
    """A new secret for a live key (None: no such live key). Tokens issued under the old secret run
    out at their expiry; revoke the key to cut them off at once."""
    secret = _new_secret()
    result = connection.execute(
        access_keys.update()
        .where(access_keys.c.client_id == client_id, access_keys.c.revoked_at.is_(None))
        .values(secret_hash=hash_secret(secret), rotated_at=now_ms)
    )
    return secret if result.rowcount else None


def revoke_key(connection: sa.Connection, client_id: str, *, now_ms: int) -> bool:
    """Revoke a live key (False: no such live key). Its tokens are refused from now on."""
    result = connection.execute(
        access_keys.update()
        .where(access_keys.c.client_id == client_id, access_keys.c.revoked_at.is_(None))
        .values(revoked_at=now_ms)
    )
    return bool(result.rowcount)


def list_keys(connection: sa.Connection) -> list[Any]:
    columns = [c for c in access_keys.c if c.name != "secret_hash"]
    return list(
        connection.execute(sa.select(*columns).order_by(access_keys.c.created_at, access_keys.c.client_id))
    )


def get_key(connection: sa.Connection, client_id: str) -> Any:
    columns = [c for c in access_keys.c if c.name != "secret_hash"]
    return connection.execute(sa.select(*columns).where(access_keys.c.client_id == client_id)).first()


def has_admin(connection: sa.Connection) -> bool:
    found = connection.execute(
        sa.select(access_keys.c.client_id).where(access_keys.c.client_id == ADMIN_CLIENT_ID)
    ).first()
    return found is not None


def create_admin(connection: sa.Connection, *, now_ms: int) -> str:
    """Create the administrator key (administrator on the tenant) and return its secret, the only
    time it is known in clear."""
    key = create_key(
        connection,
        kind=KeyKind.SERVICE,
        name="administrator (created on first start)",
        by="workplane",
        now_ms=now_ms,
        client_id=ADMIN_CLIENT_ID,
    )
    grant(
        connection,
        ADMIN_CLIENT_ID,
        Role.ADMINISTRATOR,
        Scope(ScopeType.TENANT, TENANT_SCOPE_ID),
        by="workplane",
        now_ms=now_ms,
    )
    return key.secret


def write_credential_file(path: Path, client_id: str, secret: str) -> None:
    write_private(path, f"WORKPLANE_CLIENT_ID={client_id}\nWORKPLANE_CLIENT_SECRET={secret}\n")
