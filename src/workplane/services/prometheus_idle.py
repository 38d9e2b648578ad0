"""``idleGpus`` / ``idleAllocatedGpus`` when Prometheus is the metrics source.

The embedded store evaluates the idle rule (docs/decisions/0008-workload-metrics.md) when utilisation
samples arrive; with Prometheus nothing arrives, so this job evaluates it every minute for the running
workloads that hold GPUs, from the same GPU utilisation the metrics endpoint serves, and stores the
result where filters and sorting see it. A workload whose pods Prometheus has no utilisation for keeps
what its agent reported.
"""

from __future__ import annotations

import asyncio
import logging

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from workplane.domain.timefmt import now_ms
from workplane.metrics.backend import BackendUnavailable
from workplane.metrics.prometheus import PrometheusClient, gpus_idle_now
from workplane.metrics.store import refresh_idle
from workplane.metrics.targets import pods_of
from workplane.store.database import Database
from workplane.store.schema import workloads

log = logging.getLogger("workplane.metrics")
INTERVAL_S = 60.0
w = workloads.c


def refresh_idle_from_prometheus(db: Database, client: PrometheusClient, now_ms: int) -> int:
    """One pass; the number of workloads whose idle fields changed."""
    with db.read() as connection:
        ids = connection.execute(
            sa.select(w.id).where(w.deleted_at.is_(None), w.phase == "Running", w.allocated_gpu > 0)
        ).scalars()
        targets = {i: pods for i in ids if (pods := pods_of(connection, i)) is not None and pods.names}
    futures = {i: client.pool.submit(gpus_idle_now, client, pods, now_ms) for i, pods in targets.items()}
    known: dict[str, bool | None] = {}
    for workload_id, future in futures.items():
        try:
            known[workload_id] = future.result()
        except BackendUnavailable:
            raise
        except Exception:  # one refused query leaves that workload as it was
            log.exception("idle GPUs of workload %s", workload_id)
    if not known:
        return 0
    with db.write() as connection:
        return refresh_idle(connection, sorted(known), known)


async def run_idle_refresh(db: Database, client: PrometheusClient, interval_s: float = INTERVAL_S) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            changed = await run_in_threadpool(refresh_idle_from_prometheus, db, client, now_ms())
            if changed:
                log.info("idle GPUs: %d workloads changed", changed)
        except BackendUnavailable as exc:
            log.warning("idle GPUs not refreshed: %s", exc)
        except Exception:  # a failed run must not stop the next ones
            log.exception("idle GPU refresh failed")
