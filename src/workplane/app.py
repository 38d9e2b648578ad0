"""``create_app(settings)``: wires the store, the services and the routers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from workplane import __version__
from workplane.api import (
    access,
    errors,
    health,
    history,
    metrics,
    pods,
    properties,
    sync,
    telemetry,
    token,
    workloads,
)
from workplane.api.deps import Services
from workplane.api.edge import CancelOnDisconnect, EdgeGuard
from workplane.api.exposition import RequestMetrics
from workplane.api.exposition import router as exposition_router
from workplane.api.gate import ExpensiveReads
from workplane.api.openapi import build_openapi
from workplane.api.ui import router as dashboard_router
from workplane.auth.audit import run_flusher
from workplane.auth.cache import AccessCache
from workplane.auth.tokens import TokenSigner
from workplane.metrics.prometheus import PrometheusClient
from workplane.server_metrics import multiprocess_dir
from workplane.services.checkpoint import run_checkpoints
from workplane.services.prometheus_idle import run_idle_refresh
from workplane.services.retention import run_metrics_maintenance, run_retention
from workplane.services.setup import prepare_store
from workplane.services.store_workers import StoreWorkers
from workplane.settings import Settings, load_settings
from workplane.store.catalog import CatalogCache
from workplane.store.database import Database, create_database

log = logging.getLogger("workplane")


def build_services(
    settings: Settings, db: Database | None = None, *, auth_disabled: bool = False
) -> Services:
    db = db or create_database(settings, background_checkpoints=settings.checkpoints_in_background)
    catalog = CatalogCache()
    return Services(
        settings=settings,
        db=db,
        catalog=catalog,
        signer=TokenSigner.from_dir(
            settings.data_dir, tenant=str(settings.tenant_id), key_dir=settings.signing_key_dir
        ),
        workers=StoreWorkers(settings, db, catalog, settings.sync_process_count),
        access=AccessCache(settings.access_cache_s),
        expensive_reads=ExpensiveReads(settings.max_expensive_reads),
        prometheus=PrometheusClient(settings) if settings.metrics_backend == "prometheus" else None,
        auth_disabled=auth_disabled,
    )


async def refresh_pool_metrics(svc: Services, every_s: float = 5.0) -> None:
    """Several server processes (prometheus-client's multiprocess mode): a scrape reads every
    process's pool gauges from their files, so each process refreshes its own now and then; the one
    that answers a scrape also does just before it."""
    while True:
        svc.metrics.refresh_pool(svc.db)
        await asyncio.sleep(every_s)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or (services.settings if services else load_settings())
    svc = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(run_flusher(svc.refusals, svc.db))]
        if svc.workers.processes > 0:
            tasks.append(asyncio.create_task(svc.workers.retire_when_idle()))
        if settings.server_metrics != "off" and multiprocess_dir() is not None:
            tasks.append(asyncio.create_task(refresh_pool_metrics(svc)))
        if settings.checkpoints_in_background:
            tasks.append(asyncio.create_task(run_checkpoints(svc.db, settings.sqlite_checkpoint_interval_s)))
        if settings.retention_interval_s > 0:
            tasks.append(
                asyncio.create_task(
                    run_retention(
                        svc.db,
                        settings.deleted_retention_days,
                        settings.retention_interval_s,
                        also=[svc.throttle.purge],
                    )
                )
            )
            tasks.append(
                asyncio.create_task(
                    run_metrics_maintenance(
                        svc.db, settings.metrics_retention_days, settings.retention_interval_s
                    )
                )
            )
            if svc.prometheus is not None:  # idle GPUs from Prometheus' utilisation, every minute
                tasks.append(asyncio.create_task(run_idle_refresh(svc.db, svc.prometheus)))
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(svc.workers.stop)
        try:  # refusals still buffered
            await asyncio.to_thread(svc.refusals.flush, svc.db)
        except Exception:
            log.exception("could not write the audit log")
        if services is None:  # we created the engine, so we close it
            svc.db.dispose()
            if svc.prometheus is not None:
                svc.prometheus.close()

    app = FastAPI(
        title="workplane",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.services = svc
    errors.install(app)
    app.add_middleware(CancelOnDisconnect)
    app.add_middleware(
        EdgeGuard, max_body_bytes=settings.max_body_bytes, max_sync_body_bytes=settings.max_sync_body_bytes
    )
    if settings.server_metrics != "off":  # outermost: requests EdgeGuard refuses are counted too
        app.add_middleware(RequestMetrics, metrics=svc.metrics)
    # telemetry and pods before workloads: /workloads/telemetry and /workloads/pods must not be taken
    # for /workloads/{workloadId}. The routers' routes are the app's own, not included: FastAPI
    # analyses an included route's endpoint (parameters, dependencies, response model) again for each
    # app, on its first request, where a router's own route was analysed once, when its module was
    # imported (a first request to /health: 25 ms -> 2 ms; every test makes an app). They are shared
    # by every app of the process, so ``app.dependency_overrides`` does not reach them (nothing uses it).
    for module in (health, token, telemetry, pods, workloads, history, metrics, properties, sync, access):
        app.router.routes.extend(module.router.routes)
    app.router.routes.extend(exposition_router.routes)  # GET /metrics, the server's own metrics
    app.router.routes.extend(dashboard_router.routes)  # the dashboard: / and /ui/..., nothing under /api

    def openapi() -> dict[str, Any]:
        return build_openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (multi-process serving): settings from the environment."""
    settings = load_settings()
    svc = build_services(settings)
    if settings.migrate_on_start:
        prepare_store(svc.db, settings, announce=False)
    return create_app(settings, svc)
