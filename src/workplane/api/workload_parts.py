"""What the routes under ``/workloads/{workloadId}/…`` (pods, history) share: the workload's id, and
the rule that the parts of a workload are scoped exactly as the workload is."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from workplane.api.deps import readable
from workplane.api.errors import bad_request, not_found
from workplane.auth.rules import Access
from workplane.store import workloads as store


def workload_id_of(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise bad_request(f"invalid workloadId: {text!r} is not a UUID") from None


def require_readable(connection: sa.Connection, access: Access, workload_id: str) -> None:
    """404 unless the workload exists inside the caller's scopes: outside them it does not exist, and
    neither do its pods, events or history."""
    if store.get_workload(connection, workload_id, scope=readable(access)) is None:
        raise not_found(f"workload {workload_id} not found")
