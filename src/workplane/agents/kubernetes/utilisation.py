"""GPU utilisation and GPU memory of the cluster's workloads, read from NVIDIA's DCGM exporter (its
``/metrics`` endpoint, or a Prometheus that scrapes it) and sent as metric samples of the sync protocol,
so that the server's embedded metrics store has GPU series without a Prometheus of its own.

The exporter reports one series per GPU, labelled with the pod (``pod``, ``namespace``) the kubelet
gave that GPU to: ``DCGM_FI_DEV_GPU_UTIL`` in percent and ``DCGM_FI_DEV_FB_USED`` (frame buffer used)
in MiB. A workload's GPU_UTILIZATION is the mean over the GPUs of its pods, the rule the server's idle
GPU accounting relies on (0 exactly when every GPU is at 0); its GPU_MEMORY_USAGE_BYTES is the sum.

A Prometheus that scrapes the exporter without ``honor_labels`` renames the exporter's ``pod`` and
``namespace`` to ``exported_pod`` / ``exported_namespace`` when its own target labels (the exporter's
pod) already use those names; the exported names win when present. A GPU that no pod holds has no
pod label and is left out, as are GPUs of pods whose workload the agent has not reported yet (the
server refuses samples of a workload it does not know).
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

JsonObject = dict[str, object]

GPU_UTIL: Final = "DCGM_FI_DEV_GPU_UTIL"  # percent, per GPU
FB_USED: Final = "DCGM_FI_DEV_FB_USED"  # MiB, per GPU
SERIES: Final = {GPU_UTIL: "GPU_UTILIZATION", FB_USED: "GPU_MEMORY_USAGE_BYTES"}
MIB: Final = 2**20
# The lines of the two families: their samples, and their HELP and TYPE comments.
_LINES: Final = tuple(f"{head}{name}" for name in (GPU_UTIL, FB_USED) for head in ("", "# HELP ", "# TYPE "))
QUERY: Final = f'{{__name__=~"{GPU_UTIL}|{FB_USED}"}}'

SourceKind = Literal["dcgm-exporter", "prometheus"]


class UtilisationUnavailable(RuntimeError):
    """The exporter or Prometheus did not answer, or answered something else than expected."""


@dataclass(frozen=True, slots=True)
class GpuReading:
    namespace: str
    pod: str
    gpu: str  # the GPU's UUID (or index and host): a GPU seen twice is counted once
    metric: str  # GPU_UTIL or FB_USED
    value: float


def reading(
    name: str, labels: Mapping[str, str], value: float, *, renamed: bool = False
) -> GpuReading | None:
    """One exporter series as a reading, or None: another metric, no pod, no finite value. With
    ``renamed`` (Prometheus renamed the exporter's labels), ``pod`` is the exporter's own pod and only
    ``exported_pod`` names the GPU's."""
    if name not in SERIES or not math.isfinite(value):
        return None
    if renamed:
        pod, namespace = labels.get("exported_pod"), labels.get("exported_namespace")
    else:
        pod = labels.get("exported_pod") or labels.get("pod")
        namespace = labels.get("exported_namespace") or labels.get("namespace")
    if not pod or not namespace:
        return None
    gpu = labels.get("UUID") or f"{labels.get('Hostname', '')}/{labels.get('gpu', '')}"
    return GpuReading(namespace, pod, gpu, name, value)


def parse_exposition(text: str) -> list[GpuReading]:
    """The readings of a DCGM exporter's ``/metrics`` text (parsed by prometheus-client's parser).
    Only the two families' lines are parsed: an exporter of a large node writes dozens of others."""
    wanted = "\n".join(line for line in text.splitlines() if line.startswith(_LINES))
    found = []
    try:
        for family in text_string_to_metric_families(wanted + "\n"):
            for sample in family.samples:
                item = reading(sample.name, sample.labels, sample.value)
                if item is not None:
                    found.append(item)
    except ValueError as exc:
        raise UtilisationUnavailable(f"not Prometheus' exposition format: {exc}") from None
    return found


def parse_query_answer(body: bytes) -> list[GpuReading]:
    """The readings of a Prometheus instant query's answer (``resultType`` vector)."""
    try:
        answer = orjson.loads(body)
        if answer.get("status") != "success" or answer["data"]["resultType"] != "vector":
            raise UtilisationUnavailable(f"Prometheus answered {str(answer)[:200]}")
        results = answer["data"]["result"]
        # A GPU no pod holds has no pod label of the exporter's: when the labels were renamed, the
        # ``pod`` left on its series is the exporter's own, not a GPU user.
        renamed = any("exported_pod" in series["metric"] for series in results)
        found = []
        for series in results:
            labels = series["metric"]
            name = str(labels.get("__name__", ""))
            item = reading(name, labels, float(series["value"][1]), renamed=renamed)
            if item is not None:
                found.append(item)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise UtilisationUnavailable(f"not a Prometheus query answer: {exc!r}") from None
    return found


def workload_samples(
    readings: Iterable[GpuReading], workloads: Mapping[tuple[str, str], str], at_ms: int
) -> list[JsonObject]:
    """Sample series of the sync protocol, one point each at ``at_ms``, for the workloads whose pods
    ((namespace, pod) -> workload id in ``workloads``) hold GPUs in ``readings``."""
    per_gpu: dict[tuple[str, str], dict[str, float]] = {}  # (workload, metric) -> gpu -> value
    for item in readings:
        workload = workloads.get((item.namespace, item.pod))
        if workload is not None:
            per_gpu.setdefault((workload, item.metric), {})[item.gpu] = item.value
    series: list[JsonObject] = []
    for (workload, metric), gpus in sorted(per_gpu.items()):
        values = list(gpus.values())
        value = sum(values) / len(values) if metric == GPU_UTIL else sum(values) * MIB
        series.append(
            {"workloadId": workload, "metric": SERIES[metric], "timestamps": [at_ms], "values": [value]}
        )
    return series


class UtilisationSource:
    """Where the readings come from: a DCGM exporter's ``/metrics`` URL, or a Prometheus server's
    base URL (asked for the latest value of both series with one instant query)."""

    def __init__(
        self, url: str, kind: SourceKind, *, interval_s: float = 15.0, timeout_s: float = 5.0
    ) -> None:
        self.url = url
        self.kind = kind
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._next = 0.0
        self.failing = False  # said once per outage, not every round
        # The TLS context of every reading's client, made on the first: httpx would build one for each
        # client, loading the CA bundle each time (34-38 ms of CPU a reading, every ``interval_s``).
        self._tls: ssl.SSLContext | None = None

    def due(self) -> bool:
        """Whether a reading is due (every ``interval_s``, the exporter's own default period)."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval_s
        return True

    async def read(self) -> list[GpuReading]:
        try:
            if self._tls is None:
                self._tls = httpx.create_ssl_context()
            async with httpx.AsyncClient(timeout=self.timeout_s, verify=self._tls) as client:
                if self.kind == "prometheus":
                    answer = await client.get(f"{self.url.rstrip('/')}/api/v1/query", params={"query": QUERY})
                else:
                    answer = await client.get(self.url, headers={"Accept": "text/plain"})
        except httpx.HTTPError as exc:
            raise UtilisationUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from None
        if answer.status_code != 200:
            raise UtilisationUnavailable(f"{self.url} answered {answer.status_code}")
        if self.kind == "prometheus":
            return parse_query_answer(answer.content)
        return parse_exposition(answer.text)
