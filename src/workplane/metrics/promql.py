"""Which Prometheus series answer each metric type, and the PromQL that evaluates one point.

Every type is a mean over the point's window ``(t - step, t]`` of a workload-level value, aggregated
over the workload's pods (the namespace and pod names its agent reported):

- gauges (DCGM utilisation and frame buffer, cAdvisor working set, NIM gauges): the mean of each series
  over the window (``avg_over_time``), then averaged (utilisation: the mean over the GPUs) or summed
  (bytes, requests) over the series. When every series is sampled at the same instants this is exactly
  the mean, over the window, of the per-instant average or sum — what an agent pushing one
  workload-level series into the embedded store would have stored;
- counters (cAdvisor CPU seconds): ``rate`` over the window, summed over the containers;
- NIM latencies (histograms): the mean latency of the requests finished in the window,
  ``increase(_sum) / increase(_count)`` summed over the pods.

DCGM's exporter labels each GPU with the pod that uses it (``pod``, ``namespace``). Scraped with
``honor_labels: false`` (the default), those collide with the exporter pod's own target labels and
Prometheus renames them ``exported_pod`` / ``exported_namespace``: GPU selectors match either form.

docs/prometheus-metrics.md lists the expressions per type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from workplane.metrics.types import WorkloadMetricType as T

MIB = 1 << 20


class Kind(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM_MEAN = "histogram_mean"


class Labels(StrEnum):
    """How an exporter's series name their pod."""

    DCGM = "dcgm"  # pod/namespace, or exported_pod/exported_namespace behind honor_labels: false
    CADVISOR = "cadvisor"  # pod/namespace/container; container "" is the pod's total, "POD" its sandbox
    POD = "pod"  # pod/namespace as the scrape of the pod itself sets them (NIM)


@dataclass(frozen=True, slots=True)
class Recipe:
    names: tuple[str, ...]  # metric names (a histogram's base name); several are summed (aggregate sum)
    labels: Labels
    kind: Kind
    aggregate: str  # "avg" or "sum" over the series
    factor: int = 1  # unit conversion to the type's unit


RECIPES: dict[T, Recipe] = {
    T.GPU_UTILIZATION: Recipe(("DCGM_FI_DEV_GPU_UTIL",), Labels.DCGM, Kind.GAUGE, "avg"),
    T.GPU_MEMORY_USAGE_BYTES: Recipe(("DCGM_FI_DEV_FB_USED",), Labels.DCGM, Kind.GAUGE, "sum", MIB),
    T.NVLINK_BANDWIDTH_TOTAL: Recipe(
        ("DCGM_FI_PROF_NVLINK_TX_BYTES", "DCGM_FI_PROF_NVLINK_RX_BYTES"), Labels.DCGM, Kind.GAUGE, "sum"
    ),
    T.CPU_USAGE_CORES: Recipe(("container_cpu_usage_seconds_total",), Labels.CADVISOR, Kind.COUNTER, "sum"),
    T.CPU_MEMORY_USAGE_BYTES: Recipe(
        ("container_memory_working_set_bytes",), Labels.CADVISOR, Kind.GAUGE, "sum"
    ),
    T.NIM_NUM_REQUESTS_RUNNING: Recipe(("num_requests_running",), Labels.POD, Kind.GAUGE, "sum"),
    T.NIM_NUM_REQUESTS_WAITING: Recipe(("num_requests_waiting",), Labels.POD, Kind.GAUGE, "sum"),
    T.NIM_NUM_REQUEST_MAX: Recipe(("num_request_max",), Labels.POD, Kind.GAUGE, "sum"),
    T.NIM_REQUEST_SUCCESS_TOTAL: Recipe(("request_success_total",), Labels.POD, Kind.GAUGE, "sum"),
    T.NIM_REQUEST_FAILURE_TOTAL: Recipe(("request_failure_total",), Labels.POD, Kind.GAUGE, "sum"),
    T.NIM_GPU_CACHE_USAGE_PERC: Recipe(("gpu_cache_usage_perc",), Labels.POD, Kind.GAUGE, "avg"),
    T.NIM_TIME_TO_FIRST_TOKEN_SECONDS: Recipe(
        ("time_to_first_token_seconds",), Labels.POD, Kind.HISTOGRAM_MEAN, "sum"
    ),
    T.NIM_E2E_REQUEST_LATENCY_SECONDS: Recipe(
        ("e2e_request_latency_seconds",), Labels.POD, Kind.HISTOGRAM_MEAN, "sum"
    ),
}


def quoted(text: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _regex_literal(text: str) -> str:
    # RE2 metacharacters escaped, so a pod name matches only itself.
    return "".join("\\" + ch if ch in r"\.+*?()|[]{}^$" else ch for ch in text)


@dataclass(frozen=True, slots=True)
class Pods:
    """The pods whose series make up a workload's (or one pod's) values."""

    namespace: str
    names: tuple[str, ...]

    def matchers(self, labels: Labels) -> list[str]:
        """Label matchers, one set per way the exporter may name the pod (alternatives)."""
        pods = quoted("|".join(_regex_literal(n) for n in sorted(set(self.names))))
        namespace = quoted(self.namespace)
        direct = f"namespace={namespace},pod=~{pods}"
        if labels is Labels.CADVISOR:
            return [f'{direct},container!="",container!="POD"']
        if labels is Labels.DCGM:
            return [direct, f"exported_namespace={namespace},exported_pod=~{pods}"]
        return [direct]


def selectors(name: str, recipe: Recipe, pods: Pods) -> list[str]:
    return [f"{name}{{{m}}}" for m in pods.matchers(recipe.labels)]


def _union(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else " or ".join(f"({p})" for p in parts)


def _per_series(function: str, name: str, recipe: Recipe, pods: Pods, window: str) -> str:
    return _union([f"{function}({s}[{window}])" for s in selectors(name, recipe, pods)])


def window_expression(recipe: Recipe, pods: Pods, window: str) -> str:
    """The value of one point, evaluated at its time ``t`` over the range ``window`` (ending at t)."""
    if recipe.kind is Kind.HISTOGRAM_MEAN:
        base = recipe.names[0]
        total = _per_series("increase", f"{base}_sum", recipe, pods, window)
        count = _per_series("increase", f"{base}_count", recipe, pods, window)
        return f"sum({total}) / sum({count})"
    function = "rate" if recipe.kind is Kind.COUNTER else "avg_over_time"
    # Several names are summed name by name: functions drop the metric name, so TX and RX of one GPU
    # in one vector would clash as identical label sets (and DCGM reports the two together).
    expression = " + ".join(
        f"{recipe.aggregate}({_per_series(function, name, recipe, pods, window)})" for name in recipe.names
    )
    return f"{expression} * {recipe.factor}" if recipe.factor != 1 else expression


def raw_selectors(recipe: Recipe, pods: Pods, window: str) -> list[str]:
    """Range selectors of the raw samples behind a type (a histogram: its ``_sum`` and ``_count``)."""
    names = (
        [f"{recipe.names[0]}_sum", f"{recipe.names[0]}_count"]
        if recipe.kind is Kind.HISTOGRAM_MEAN
        else list(recipe.names)
    )
    return [f"{s}[{window}]" for name in names for s in selectors(name, recipe, pods)]
