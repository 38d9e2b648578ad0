"""Which pods a workload's measured series come from, as its agent reported them: the namespace and
pod names that Prometheus' exporters label their series with."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from workplane.metrics.promql import Pods
from workplane.store.schema import workload_pods, workloads

p = workload_pods.c


def pods_of(connection: sa.Connection, workload_id: str, pod_id: str | None = None) -> Pods | None:
    """Every pod the workload ever had (deleted ones too: a past range may cover them), or only
    ``pod_id``; None when the workload does not exist or ``pod_id`` is not one of its pods."""
    namespace = connection.execute(
        sa.select(workloads.c.namespace).where(workloads.c.id == workload_id)
    ).scalar_one_or_none()
    if namespace is None:
        return None
    query = sa.select(p.document).where(p.workload_id == workload_id)
    if pod_id is not None:
        query = query.where(p.id == pod_id)
    names = tuple(orjson.loads(document)["name"] for document in connection.execute(query).scalars())
    if pod_id is not None and not names:
        return None
    return Pods(namespace, names)
