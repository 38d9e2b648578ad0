"""The Prometheus back end: measured series of a workload's pods, through Prometheus' HTTP API.

Prometheus evaluates the points itself (``query_range``), so a week of 15-second samples of eight pods
never leaves it: one request per metric type, all types of an answer at once (a thread each; httpx's
client is shared and pools its connections).

The sampling rule (docs/decisions/0008-workload-metrics.md) maps onto ``query_range`` as follows:
points at ``start + i * step`` evaluated over the range ``(t - step, t]``. Prometheus 2 includes the
range's left end (``[t - w, t]``), so the range is ``step - 1ms`` there (sample times are whole
milliseconds); from version 3 on it excludes it, and the range is ``step``. Evaluation times are whole
milliseconds evenly spaced, so when ``end - start`` is not a whole number of milliseconds per step the
i-th point is evaluated up to ``N - 1`` ms (under a second) before ``floor(t_i)``; the point keeps the
rule's timestamp. ``numberOfSamples = 0``, and steps under a second, read the raw samples (a range
vector at ``end``) and apply ``metrics.sampling`` to them, exactly as the embedded store does.

Failures: a Prometheus that cannot be reached, times out or answers 5xx raises
``PrometheusUnavailable`` (the request is answered 503 with Retry-After); one that refuses a query
(4xx: too many samples, a bad expression) makes that type unavailable (207).
"""

from __future__ import annotations

import math
import re
import ssl
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import orjson

from workplane.metrics.backend import BackendUnavailable
from workplane.metrics.idle import IDLE_AFTER_MS, gpus_idle
from workplane.metrics.promql import RECIPES, Kind, Pods, Recipe, raw_selectors, window_expression
from workplane.metrics.sampling import Grid, Point, grid, sample_measured
from workplane.metrics.series import Samples
from workplane.metrics.types import WorkloadMetricType
from workplane.settings import Settings

RETRY_AFTER_S = 5
# Steps shorter than this read the raw samples: a range of a few ms is no use to Prometheus, and
# rate() and increase() need two samples in a window (scrape intervals are up to a minute).
MIN_STEP_MS = {Kind.GAUGE: 1000, Kind.COUNTER: 120_000, Kind.HISTOGRAM_MEAN: 120_000}
# Counters: how far before ``start`` the raw read reaches for the sample each rate starts from.
COUNTER_LOOKBACK_MS = 5 * 60 * 1000


class PrometheusUnavailable(BackendUnavailable):
    pass


class _Refused(Exception):
    """Prometheus refused one query (4xx): that type is left out."""


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}" if ms >= 0 else f"-{_seconds(-ms)}"


class PrometheusClient:
    """Prometheus' HTTP API with the configured authentication, TLS and a bounded timeout."""

    def __init__(self, settings: Settings) -> None:
        # Imported here, not with the module: every server and CLI process imports this module, only
        # those configured for Prometheus need httpx (0.2 CPU-s of a process's start).
        import httpx

        assert settings.prometheus_url is not None  # the settings refuse the back end without it
        headers = {"Accept": "application/json"}
        if settings.prometheus_bearer_token is not None:
            headers["Authorization"] = f"Bearer {settings.prometheus_bearer_token.get_secret_value()}"
        auth = None
        if settings.prometheus_username is not None:
            password = settings.prometheus_password
            auth = httpx.BasicAuth(
                settings.prometheus_username, password.get_secret_value() if password else ""
            )
        verify: bool | ssl.SSLContext = not settings.prometheus_insecure
        if settings.prometheus_ca_file is not None and not settings.prometheus_insecure:
            verify = ssl.create_default_context(cafile=str(settings.prometheus_ca_file))
        self.base = settings.prometheus_url.rstrip("/")
        # Each call is bounded by httpx's timeouts (connect, and each read); a whole answer, queued
        # behind other requests' queries in the pool or dribbled slowly, is bounded by this.
        self.deadline_s = 2 * settings.prometheus_timeout_s + 1
        self.http = httpx.Client(
            headers=headers,
            auth=auth,
            verify=verify,
            timeout=settings.prometheus_timeout_s,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="prometheus")
        self._left_open: bool | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.http.close()

    def _call(self, path: str, form: dict[str, str] | None = None) -> Any:
        import httpx  # already loaded by __init__

        # Queries go as a form (POST): the pod names of a large workload make a long expression.
        try:
            if form is None:
                answer = self.http.get(f"{self.base}{path}")
            else:
                answer = self.http.post(f"{self.base}{path}", data=form)
        except httpx.HTTPError as exc:
            raise PrometheusUnavailable(f"Prometheus at {self.base} did not answer: {exc}") from exc
        if answer.status_code >= 500 or answer.status_code in (408, 429):
            raise PrometheusUnavailable(f"Prometheus at {self.base} answered {answer.status_code}")
        if answer.status_code in (401, 403):
            raise PrometheusUnavailable(
                f"Prometheus at {self.base} refused the configured credentials ({answer.status_code})"
            )
        try:
            body = orjson.loads(answer.content)
        except orjson.JSONDecodeError as exc:
            raise PrometheusUnavailable(f"Prometheus at {self.base} answered no JSON") from exc
        if answer.status_code >= 400 or body.get("status") != "success":
            raise _Refused(str(body.get("error") or answer.status_code))
        return body["data"]

    def left_open_ranges(self) -> bool:
        """Whether range selectors exclude their left end (Prometheus 3 and later)."""
        if self._left_open is None:
            try:
                version = str(self._call("/api/v1/status/buildinfo").get("version", ""))
            except _Refused:  # an API without build info (some Prometheus-compatible stores)
                version = ""
            major = re.match(r"\d+", version)
            with self._lock:
                self._left_open = major is not None and int(major.group()) >= 3
        return self._left_open

    def query_range(self, expression: str, start_ms: int, end_ms: int, step_ms: int) -> list[Any]:
        data = self._call(
            "/api/v1/query_range",
            {
                "query": expression,
                "start": _seconds(start_ms),
                "end": _seconds(end_ms),
                "step": _seconds(step_ms),
            },
        )
        return list(data["result"])

    def query(self, expression: str, at_ms: int) -> list[Any]:
        data = self._call("/api/v1/query", {"query": expression, "time": _seconds(at_ms)})
        return list(data["result"])


@dataclass(frozen=True, slots=True)
class PrometheusSource:
    """``metrics.backend.MeasuredSource`` for the pods of one workload (or one pod)."""

    client: PrometheusClient
    pods: Pods

    def measure(
        self, metrics: Sequence[WorkloadMetricType], window: Grid
    ) -> dict[WorkloadMetricType, list[Point]]:
        wanted = [m for m in metrics if m in RECIPES]
        if not wanted or not self.pods.names:
            return {m: [] for m in wanted}
        left_open = self.client.left_open_ranges()
        futures = {m: self.client.pool.submit(self._points, RECIPES[m], window, left_open) for m in wanted}
        answered: dict[WorkloadMetricType, list[Point]] = {}
        for metric, future in futures.items():
            try:
                answered[metric] = future.result(timeout=self.client.deadline_s)
            except _Refused:
                continue
            except FutureTimeout:
                late = f"Prometheus did not answer within {self.client.deadline_s} s"
                raise PrometheusUnavailable(late) from None
        return answered

    def _points(self, recipe: Recipe, window: Grid, left_open: bool) -> list[Point]:
        span = window.end_ms - window.start_ms
        step = span // max(window.count - 1, 1)
        if window.raw or step < MIN_STEP_MS[recipe.kind]:
            return sample_measured(self._raw(recipe, window, left_open), window)
        first = window.bounds[1]
        last = first + step * (len(window.times) - 1)
        expression = window_expression(recipe, self.pods, f"{step if left_open else step - 1}ms")
        points: list[Point] = []
        times = window.times
        for series in self.client.query_range(expression, first, last, step):
            for at, text in series["values"]:
                value = float(text)
                if math.isfinite(value):  # 0/0: no request finished in the window
                    points.append((times[(round(float(at) * 1000) - first) // step], value))
        points.sort()
        return points

    def _raw(self, recipe: Recipe, window: Grid, left_open: bool) -> list[Samples]:
        """The workload-level series at each sample instant in ``[start, end]``."""
        reach = window.end_ms - window.start_ms
        if recipe.kind is not Kind.GAUGE:
            reach += COUNTER_LOOKBACK_MS
        selectors = raw_selectors(recipe, self.pods, f"{reach + 1 if left_open else reach}ms")
        found: dict[tuple[tuple[str, str], ...], Any] = {}
        for selector in selectors:
            # A series matched by both label forms (pod and exported_pod) counts once, as with `or`.
            for series in self.client.query(selector, window.end_ms):
                found[tuple(sorted(series["metric"].items()))] = series
        runs = [
            (
                [round(float(at) * 1000) for at, _ in s["values"]],
                [float(v) for _, v in s["values"]],
                s["metric"],
            )
            for s in found.values()
        ]
        values = _combine(recipe, runs)
        times = [t for t in sorted(values) if t >= window.start_ms]
        return [Samples(times, [values[t] for t in times], 0)] if times else []


def gpus_idle_now(client: PrometheusClient, pods: Pods, now_ms: int) -> bool | None:
    """The idle rule (``metrics.idle``) over the workload-level GPU utilisation of the last three idle
    periods: zeros all through them are idle whatever came before. None: no sample then."""
    window = grid(now_ms - 3 * IDLE_AFTER_MS, now_ms, 0)
    source = PrometheusSource(client, pods)
    runs = source._raw(RECIPES[WorkloadMetricType.GPU_UTILIZATION], window, client.left_open_ranges())
    return gpus_idle(runs)


def _increments(times: list[int], values: list[float]) -> Iterable[tuple[int, float, int]]:
    """(time, increase since the previous sample, milliseconds since it) of a counter; a drop is a
    reset, after which the counter counts from 0."""
    for i in range(1, len(times)):
        delta = values[i] - values[i - 1]
        yield times[i], values[i] if delta < 0 else delta, times[i] - times[i - 1]


def _combine(recipe: Recipe, runs: list[tuple[list[int], list[float], dict[str, str]]]) -> dict[int, float]:
    """Per instant, the workload-level value of the series sampled then."""
    if recipe.kind is Kind.GAUGE:
        by_time: defaultdict[int, list[float]] = defaultdict(list)
        for times, values, _ in runs:
            for t, v in zip(times, values, strict=True):
                by_time[t].append(v)
        if recipe.aggregate == "avg":
            return {t: math.fsum(vs) / len(vs) * recipe.factor for t, vs in by_time.items()}
        return {t: math.fsum(vs) * recipe.factor for t, vs in by_time.items()}
    if recipe.kind is Kind.COUNTER:
        cores: defaultdict[int, float] = defaultdict(float)
        for times, values, _ in runs:
            for t, increase, elapsed in _increments(times, values):
                cores[t] += increase * 1000 / elapsed
        return dict(cores)
    totals: defaultdict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for times, values, labels in runs:
        column = 1 if labels.get("__name__", "").endswith("_count") else 0
        for t, increase, _ in _increments(times, values):
            totals[t][column] += increase
    return {t: total / count for t, (total, count) in totals.items() if count}
