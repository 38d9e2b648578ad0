"""Roles, permissions and access rules: *subject* has *role* in *scope* (Run:ai's model).

A role is a fixed set of permissions. A rule grants its role's permissions on its scope and on
everything under it (tenant → cluster → department → project). What a caller may do with a permission
is the union of the scopes of its rules whose role carries it (``Access.scopes``). The permission table
in ``docs/access-control.md`` is this module's ``ROLE_PERMISSIONS``, written out.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from workplane.domain.roles import KeyKind, Role
from workplane.domain.scopes import Scope, ScopeSet, ScopeType
from workplane.store.schema import access_keys, access_rules


class Permission(StrEnum):
    WORKLOADS_READ = "workloads:read"  # list, count, get, telemetry, metrics
    WORKLOADS_WRITE = "workloads:write"  # submit, suspend, resume, delete (endpoints to come)
    CATALOG_READ = "catalog:read"  # categories, priorities, types
    CATALOG_WRITE = "catalog:write"  # register, change, delete workload types
    SYNC = "clusters:sync"  # report a cluster's workloads (the sync protocol)
    ACCESS_ADMIN = "access:admin"  # access keys, access rules, the audit log


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMINISTRATOR: frozenset(Permission),
    Role.DEPARTMENT_EDITOR: frozenset(
        {Permission.WORKLOADS_READ, Permission.WORKLOADS_WRITE, Permission.CATALOG_READ}
    ),
    Role.DEPARTMENT_VIEWER: frozenset({Permission.WORKLOADS_READ, Permission.CATALOG_READ}),
    Role.RESEARCHER: frozenset(
        {Permission.WORKLOADS_READ, Permission.WORKLOADS_WRITE, Permission.CATALOG_READ}
    ),
    Role.PROJECT_VIEWER: frozenset({Permission.WORKLOADS_READ, Permission.CATALOG_READ}),
    Role.CLUSTER_AGENT: frozenset({Permission.SYNC, Permission.CATALOG_READ}),
}

# The scopes a role may be granted on: a department role needs a department (or wider) scope, an
# agent's role a cluster, and so on. A role on a wider scope than its name says covers more (a
# department viewer on a cluster sees the whole cluster), as in Run:ai.
ROLE_SCOPES: dict[Role, frozenset[ScopeType]] = {
    Role.ADMINISTRATOR: frozenset({ScopeType.TENANT}),
    Role.DEPARTMENT_EDITOR: frozenset({ScopeType.TENANT, ScopeType.CLUSTER, ScopeType.DEPARTMENT}),
    Role.DEPARTMENT_VIEWER: frozenset({ScopeType.TENANT, ScopeType.CLUSTER, ScopeType.DEPARTMENT}),
    Role.RESEARCHER: frozenset(ScopeType),
    Role.PROJECT_VIEWER: frozenset(ScopeType),
    Role.CLUSTER_AGENT: frozenset({ScopeType.CLUSTER}),
}

# Permissions over things that belong to the whole tenant (the catalog's types, credentials, the audit
# log): only a rule on the tenant scope grants them.
TENANT_WIDE = frozenset({Permission.CATALOG_WRITE, Permission.ACCESS_ADMIN})

TENANT_SCOPE_ID = "*"  # the server serves one tenant; its scope needs no id of its own


@dataclass(frozen=True, slots=True)
class Rule:
    role: Role
    scope: Scope


@dataclass(frozen=True, slots=True)
class Access:
    """An authenticated caller and everything it may do, resolved once per token and cached."""

    client_id: str
    kind: KeyKind
    cluster_id: str | None  # the one cluster an agent key reports for
    rules: tuple[Rule, ...] = ()
    _scopes: dict[Permission, ScopeSet] = field(default_factory=dict, compare=False, repr=False)

    def scopes(self, permission: Permission) -> ScopeSet:
        """Where the caller holds ``permission``: the union of its granting rules' scopes."""
        found = self._scopes.get(permission)
        if found is None:
            found = ScopeSet.of(r.scope for r in self.rules if permission in ROLE_PERMISSIONS[r.role])
            self._scopes[permission] = found
        return found

    def allows(self, permission: Permission) -> bool:
        scopes = self.scopes(permission)
        return scopes.tenant if permission in TENANT_WIDE else not scopes.is_empty

    def may_sync(self, cluster_id: str) -> bool:
        """Agents report for their own cluster only, whatever their rules say."""
        if self.kind is KeyKind.AGENT and self.cluster_id != cluster_id:
            return False
        return self.scopes(Permission.SYNC).covers_cluster(cluster_id)


def administrator(client_id: str) -> Access:
    return Access(
        client_id,
        KeyKind.SERVICE,
        None,
        (Rule(Role.ADMINISTRATOR, Scope(ScopeType.TENANT, TENANT_SCOPE_ID)),),
    )


class RuleError(ValueError):
    pass


def check_rule(role: Role, scope: Scope) -> None:
    if scope.type not in ROLE_SCOPES[role]:
        allowed = ", ".join(sorted(ROLE_SCOPES[role]))
        raise RuleError(f"role {role} can be granted on scope types {allowed}, not {scope.type}")
    if scope.type is not ScopeType.TENANT and not scope.id:
        raise RuleError(f"a {scope.type} scope needs an id")


# --- data functions (the caller owns the transaction) --------------------------------------------


def load_access(connection: sa.Connection, client_id: str) -> Access | None:
    """The caller behind a token subject, or None when its key is unknown or revoked."""
    key = connection.execute(
        sa.select(access_keys.c.kind, access_keys.c.cluster_id, access_keys.c.revoked_at).where(
            access_keys.c.client_id == client_id
        )
    ).first()
    if key is None or key.revoked_at is not None:
        return None
    rows = connection.execute(
        sa.select(access_rules.c.role, access_rules.c.scope_type, access_rules.c.scope_id).where(
            access_rules.c.subject == client_id
        )
    ).all()
    rules = tuple(
        Rule(Role(r.role), Scope(ScopeType(r.scope_type), r.scope_id))
        for r in rows
        if r.role in Role.__members__.values()
    )
    return Access(client_id, KeyKind(key.kind), key.cluster_id, rules)


def grant(connection: sa.Connection, subject: str, role: Role, scope: Scope, *, by: str, now_ms: int) -> str:
    """Add a rule and return its id (an identical rule that exists is returned as is)."""
    check_rule(role, scope)
    scope_id = TENANT_SCOPE_ID if scope.type is ScopeType.TENANT else scope.id
    existing = connection.execute(
        sa.select(access_rules.c.id).where(
            access_rules.c.subject == subject,
            access_rules.c.role == role.value,
            access_rules.c.scope_type == scope.type.value,
            access_rules.c.scope_id == scope_id,
        )
    ).scalar()
    if existing is not None:
        return str(existing)
    rule_id = str(uuid.uuid4())
    connection.execute(
        access_rules.insert().values(
            id=rule_id,
            subject=subject,
            role=role.value,
            scope_type=scope.type.value,
            scope_id=scope_id,
            created_at=now_ms,
            created_by=by,
        )
    )
    return rule_id


def revoke_rule(connection: sa.Connection, rule_id: str) -> Any:
    """Delete a rule; returns the deleted row, or None when there was none."""
    row = connection.execute(sa.select(access_rules).where(access_rules.c.id == rule_id)).first()
    if row is not None:
        connection.execute(access_rules.delete().where(access_rules.c.id == rule_id))
    return row


def list_rules(connection: sa.Connection, subjects: Iterable[str] | None = None) -> list[Any]:
    statement = sa.select(access_rules).order_by(
        access_rules.c.subject, access_rules.c.created_at, access_rules.c.id
    )
    if subjects is not None:
        statement = statement.where(access_rules.c.subject.in_(list(subjects)))
    return list(connection.execute(statement).all())
