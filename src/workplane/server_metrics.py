"""The server's own metrics, for ``GET /metrics`` in Prometheus' exposition format
(docs/decisions/0016-server-metrics.md).

One ``ServerMetrics`` per application, with a registry of its own (two applications in one process,
as the tests make, do not share counts). Everything is counted in the server process:

- HTTP requests by method, route *template* and status, and their latency. Labels come from the
  matched route (``/api/v1/workloads/{workloadId}``), never the raw path, so the number of series is
  bounded by the application's routes; a path no route matches is counted as ``unmatched``.
- Sync batches: the worker process that applies a batch (``services.store_workers``) answers its
  counts in the response body and its own apply time beside it; the server process counts both. A
  worker process therefore never touches a metric, and its coming and going leaves nothing behind.
- Token requests by outcome, bearer tokens refused by reason, the database pool, build information.

Several server processes (``workplane serve --workers N``) each count their own requests, while a
scrape reaches whichever process the kernel hands the connection to: ``serving.run_workers`` then
sets ``PROMETHEUS_MULTIPROC_DIR`` to a directory of its own, every server process keeps its values in
memory-mapped files there (prometheus-client's multiprocess mode), and a scrape sums them all.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy.pool import QueuePool

from workplane import __version__
from workplane.store.database import Database

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

UNMATCHED: Final = "unmatched"  # the route label of a request that no route matched
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Seconds. The API answers most reads in a few milliseconds; the low buckets tell those apart. Each
# bucket is a line per (method, route) in every scrape: ten, not the library's fifteen.
REQUEST_BUCKETS: Final = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
# A sync batch of up to 20,000 items takes from milliseconds to tens of seconds.
BATCH_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

SYNC_RESULTS: Final = ("applied", "ignored", "deleted")
SYNC_ITEMS: Final = ("pods", "events")
BATCH_OUTCOMES: Final = ("applied", "invalid", "unavailable")
TOKEN_OUTCOMES: Final = ("issued", "invalid_credentials", "throttled")
BEARER_REFUSALS: Final = ("missing", "malformed", "invalid", "revoked")


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, when this process runs in it. The
    library decides at import time from the same variable, so it is read from there too."""
    return os.environ.get(MULTIPROCESS_ENV) or None


class ServerMetrics:
    def __init__(self) -> None:
        # No ``_created`` series beside every counter and histogram: a third of the lines of a scrape,
        # and Prometheus reads a counter's resets from its values anyway. (A switch of the library's,
        # for the whole process: the server has no other metrics.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "workplane_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "workplane_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by method and route template.",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.sync_batches = Counter(
            "workplane_sync_batches",
            "Agents' sync batches: applied, refused as invalid (400), or not applied because a worker "
            "process stopped (503).",
            ["outcome"],
            registry=r,
        )
        self.sync_observations = Counter(
            "workplane_sync_observations",
            "Workload observations of applied sync batches: applied, ignored (stale revision), deleted.",
            ["result"],
            registry=r,
        )
        self.sync_items = Counter(
            "workplane_sync_items", "Pods and events stored from sync batches.", ["kind"], registry=r
        )
        self.samples_stored = Counter(
            "workplane_metric_samples_stored",
            "Metric samples stored from sync batches (a sample sent again is not counted twice).",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "workplane_sync_batch_apply_duration_seconds",
            "Time to validate and apply one sync batch (in the worker process that applied it).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.token_requests = Counter(
            "workplane_token_requests",
            "POST /api/v1/token requests that reached a decision: token issued, wrong credentials (401), "
            "throttled after repeated failures (429).",
            ["outcome"],
            registry=r,
        )
        self.bearer_refusals = Counter(
            "workplane_bearer_token_refusals",
            "Requests refused 401 for their bearer token: missing, malformed header, invalid (bad "
            "signature, expired), or its access key revoked.",
            ["reason"],
            registry=r,
        )
        self.pool_connections = Gauge(
            "workplane_db_pool_connections",
            "Database connections of the server's pool: in use by a request, or idle in the pool.",
            ["state"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pool_size = Gauge(
            "workplane_db_pool_size",
            "Database connections the server's pool keeps open (as many again may open under load).",
            registry=r,
            multiprocess_mode="livesum",
        )
        build = Gauge(
            "workplane_build_info",
            "Always 1; the labels say which workplane and Python answer.",
            ["version", "python"],
            registry=r,
            multiprocess_mode="max",
        )
        build.labels(__version__, platform.python_version()).set(1)
        # Children made up front: a series exists (at 0) before its first event, so a rate over it
        # is defined from the first scrape on.
        for outcome in BATCH_OUTCOMES:
            self.sync_batches.labels(outcome)
        for result in SYNC_RESULTS:
            self.sync_observations.labels(result)
        for kind in SYNC_ITEMS:
            self.sync_items.labels(kind)
        for outcome in TOKEN_OUTCOMES:
            self.token_requests.labels(outcome)
        for reason in BEARER_REFUSALS:
            self.bearer_refusals.labels(reason)
        # (method, route, status) -> the request's two recorders; prometheus-client's own ``labels``
        # builds and checks a tuple on every call, which is most of what a request would cost.
        self._request_children: dict[tuple[str, str, int], tuple[Callable[[], None], Histogram]] = {}
        self._children_lock = threading.Lock()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # The method as labelled is the key: a client's invented methods must not grow the cache.
        key = (method if method in _METHODS else "other", route, status)
        children = self._request_children.get(key)
        if children is None:
            shown = key[0]
            with self._children_lock:
                children = (
                    self.requests.labels(shown, route, str(status)).inc,
                    self.request_seconds.labels(shown, route),
                )
                self._request_children[key] = children
        increment, histogram = children
        increment()
        histogram.observe(seconds)

    def observe_batch(self, counts: dict[str, int], seconds: float) -> None:
        """An applied batch: its answer's counts and the time the worker took."""
        self.sync_batches.labels("applied").inc()
        self.batch_seconds.observe(seconds)
        for result in SYNC_RESULTS:
            if counts.get(result):
                self.sync_observations.labels(result).inc(counts[result])
        for kind in SYNC_ITEMS:
            if counts.get(kind):
                self.sync_items.labels(kind).inc(counts[kind])
        if counts.get("samples"):
            self.samples_stored.inc(counts["samples"])

    def refresh_pool(self, db: Database) -> None:
        """The pool's gauges from the pool itself (SQLAlchemy keeps the counts)."""
        pool = db.engine.pool
        if isinstance(pool, QueuePool):
            self.pool_connections.labels("in_use").set(pool.checkedout())
            self.pool_connections.labels("idle").set(pool.checkedin())
            self.pool_size.set(pool.size())

    def render(self, db: Database, accept: str | None) -> tuple[bytes, str]:
        """The exposition (text format, or OpenMetrics when the scraper asks for it) and its
        content type."""
        self.refresh_pool(db)
        encoder, content_type = choose_encoder(accept or "")
        registry: Collector = self.registry
        folder = multiprocess_dir()
        if folder is not None:
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
        if encoder is generate_latest:  # the classic text format, what Prometheus asks for by default
            return text_format(registry), content_type
        return encoder(registry), content_type


# How the library writes a value (``1.0``, ``+Inf``, ``1.5e+06``), under a type the checker knows.
_number: Callable[[float], str] = floatToGoString


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def text_format(registry: Collector) -> bytes:
    """The registry in Prometheus' text format 0.0.4, as ``prometheus_client.generate_latest`` writes
    it for the metric types used here (no ``_created`` series, no timestamps, no exemplars), in a
    third of its time: it checks and escapes every label name of every line, which over the request
    histograms of every route made a scrape cost several milliseconds. Label names here are fixed and
    valid; label values are still escaped. The tests read the result with the library's parser."""
    out: list[str] = []
    for family in registry.collect():
        name, kind = family.name, family.type
        if kind == "counter":
            name += "_total"
        elif kind == "unknown":
            kind = "untyped"
        help_text = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        for sample in family.samples:
            if sample.labels:
                labels = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(sample.labels.items()))
                out.append(f"{sample.name}{{{labels}}} {_number(sample.value)}\n")
            else:
                out.append(f"{sample.name} {_number(sample.value)}\n")
    return "".join(out).encode()
