"""A real Prometheus holding a generated week of exporter series, for the Prometheus back end's tests
and benchmark.

``Fleet`` generates, for known pods, the series the exporters would have scraped every 15 seconds:
DCGM's ``DCGM_FI_DEV_GPU_UTIL`` / ``DCGM_FI_DEV_FB_USED`` / NVLink bytes (one series per GPU; one pod's
GPUs labelled ``exported_pod`` / ``exported_namespace`` as a scrape with ``honor_labels: false`` leaves
them), cAdvisor's ``container_cpu_usage_seconds_total`` and ``container_memory_working_set_bytes`` (a
``main`` container, plus the pod-level ``container=""`` and sandbox ``container="POD"`` series that must
not be counted), kube-state-metrics' requests, and NIM's gauges and latency histogram. Every value is a
small closed-form function of (pod, GPU, sample index), so a test can work out any answer by hand
(``Fleet.workload_series``: the workload-level series an agent would have pushed instead).

``PrometheusServer`` writes them as OpenMetrics text, backfills them with ``promtool tsdb
create-blocks-from openmetrics`` (before Prometheus starts: a running one notices new blocks only
after about a minute), then runs Debian's ``prometheus`` on a free loopback port with a retention
longer than the data (retention drops whole blocks, counted from the newest sample), waits for
``/-/ready`` in a bounded loop, and stops it by its PID. ``scripts/install-prometheus`` installs the
package (``scripts/test`` calls it); ``missing()`` names what is not installed, for a clear skip.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.server import free_port

PROGRAMS = ("prometheus", "promtool")
STEP_MS = 15_000
HOUR_MS = 3_600_000
MIB = 1 << 20
READY_TIMEOUT_S = 30.0
COUNTER_BASE = 1_000_000.0  # far from 0, so that rate() never clamps its extrapolation at zero


def missing() -> list[str]:
    return [p for p in PROGRAMS if shutil.which(p) is None]


@dataclass(frozen=True)
class Pod:
    index: int
    name: str
    gpus: int = 1
    exported: bool = False  # DCGM series carry exported_pod / exported_namespace
    inference: bool = False  # serves NIM metrics
    idle_after: int | None = None  # its GPUs report 0 % from this sample index on


@dataclass
class Fleet:
    namespace: str
    pods: list[Pod]
    start_ms: int
    samples: int  # per series, every STEP_MS from start_ms
    # Pods of other workloads whose series must never be counted: another pod of the same namespace,
    # and a pod of the same name in another namespace.
    strangers: list[tuple[str, str]] = field(default_factory=list)
    # ``workload_series`` worked out once per metric: the comparison tests load the same week of
    # samples for every case they are parametrized with (about 6 CPU-s a run without the memo).
    _series: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict, repr=False, compare=False)

    def times(self) -> range:
        return range(self.start_ms, self.start_ms + self.samples * STEP_MS, STEP_MS)

    # --- the values, per (pod, GPU, sample index k) ------------------------------------------------

    @staticmethod
    def utilisation(pod: int, gpu: int, k: int) -> int:
        return (7 * k + 13 * pod + 29 * gpu) % 101

    @staticmethod
    def frame_buffer_mib(pod: int, gpu: int, k: int) -> int:
        return 1000 * (pod + 1) + 10 * gpu + k % 50

    @staticmethod
    def nvlink(pod: int, gpu: int, k: int, direction: int) -> int:
        return 1_000_000 * (pod + 1) + 1000 * gpu + 10 * (k % 7) + direction

    def cores(self, pod: int, k: int) -> float:
        """CPU cores used in the interval ending at sample k (k >= 1): constant within each hour."""
        hour = (self.start_ms + (k - 1) * STEP_MS) // HOUR_MS
        return 0.25 * (1 + (hour + pod) % 4)

    def cpu_seconds(self, pod: int) -> list[float]:
        values = [COUNTER_BASE]
        for k in range(1, self.samples):
            values.append(values[-1] + self.cores(pod, k) * STEP_MS / 1000)
        return values

    @staticmethod
    def working_set(pod: int, k: int) -> int:
        return (pod + 1) * 2**30 + (k % 97) * 4096

    @staticmethod
    def requests_running(pod: int, k: int) -> int:
        return (k + pod) % 5

    @staticmethod
    def ttft_increase(pod: int, k: int) -> tuple[float, int]:
        """(seconds, requests) added to time_to_first_token_seconds_sum / _count by sample k."""
        return 0.25 * (1 + (k + pod) % 3), 2 + pod

    # --- OpenMetrics --------------------------------------------------------------------------------

    def _pod_labels(self, pod: Pod) -> str:
        return f'namespace="{self.namespace}",pod="{pod.name}"'

    def _gpu_labels(self, pod: Pod, gpu: int) -> str:
        device = f'gpu="{gpu}",UUID="GPU-{pod.index:04d}-{gpu:04d}",modelName="NVIDIA H100 80GB HBM3"'
        if pod.exported:
            # The exporter pod's own target labels took pod/namespace; the GPU's user is exported_*.
            return (
                f'{device},exported_namespace="{self.namespace}",exported_pod="{pod.name}",'
                'namespace="gpu-operator",pod="nvidia-dcgm-exporter-7xk2p"'
            )
        return f"{device},{self._pod_labels(pod)}"

    def openmetrics(self) -> Iterator[str]:
        """The exposition, one family after another (promtool wants each family contiguous)."""
        seconds = [f"{t // 1000}" if t % 1000 == 0 else f"{t / 1000:.3f}" for t in self.times()]
        k_all = range(self.samples)

        def family(name: str, kind: str) -> Iterator[str]:
            yield f"# TYPE {name} {kind}\n"

        def series(name: str, labels: str, values: list[float] | list[int]) -> Iterator[str]:
            yield "".join(f"{name}{{{labels}}} {v} {s}\n" for v, s in zip(values, seconds, strict=True))

        yield from family("DCGM_FI_DEV_GPU_UTIL", "gauge")
        for pod in self.pods:
            for gpu in range(pod.gpus):
                idle = self.samples if pod.idle_after is None else pod.idle_after
                values = [self.utilisation(pod.index, gpu, k) if k < idle else 0 for k in k_all]
                yield from series("DCGM_FI_DEV_GPU_UTIL", self._gpu_labels(pod, gpu), values)
        for namespace, name in self.strangers:
            labels = f'gpu="0",namespace="{namespace}",pod="{name}"'
            yield from series("DCGM_FI_DEV_GPU_UTIL", labels, [100] * self.samples)
        yield from family("DCGM_FI_DEV_FB_USED", "gauge")
        for pod in self.pods:
            for gpu in range(pod.gpus):
                values = [self.frame_buffer_mib(pod.index, gpu, k) for k in k_all]
                yield from series("DCGM_FI_DEV_FB_USED", self._gpu_labels(pod, gpu), values)
        for direction, name in enumerate(("DCGM_FI_PROF_NVLINK_TX_BYTES", "DCGM_FI_PROF_NVLINK_RX_BYTES")):
            yield from family(name, "gauge")
            for pod in self.pods:
                for gpu in range(pod.gpus):
                    values = [self.nvlink(pod.index, gpu, k, direction) for k in k_all]
                    yield from series(name, self._gpu_labels(pod, gpu), values)
        yield from family("container_cpu_usage_seconds", "counter")
        for pod in self.pods:
            cpu = self.cpu_seconds(pod.index)
            labels = self._pod_labels(pod)
            yield from series("container_cpu_usage_seconds_total", f'{labels},container="main"', cpu)
            # The pod's cgroup total and its sandbox: never counted (they would double the usage).
            yield from series("container_cpu_usage_seconds_total", f'{labels},container=""', cpu)
            yield from series("container_cpu_usage_seconds_total", f'{labels},container="POD"', cpu)
        for namespace, name in self.strangers:
            labels = f'namespace="{namespace}",pod="{name}",container="main"'
            yield from series("container_cpu_usage_seconds_total", labels, self.cpu_seconds(9))
        yield from family("container_memory_working_set_bytes", "gauge")
        for pod in self.pods:
            labels = self._pod_labels(pod)
            values = [self.working_set(pod.index, k) for k in k_all]
            yield from series("container_memory_working_set_bytes", f'{labels},container="main"', values)
            yield from series("container_memory_working_set_bytes", f'{labels},container=""', values)
        yield from family("kube_pod_container_resource_requests", "gauge")
        for pod in self.pods:
            labels = f'{self._pod_labels(pod)},container="main",resource="cpu",unit="core"'
            yield from series("kube_pod_container_resource_requests", labels, [2] * self.samples)
        inference = [pod for pod in self.pods if pod.inference]
        if inference:
            yield from family("num_requests_running", "gauge")
            for pod in inference:
                values = [self.requests_running(pod.index, k) for k in k_all]
                yield from series("num_requests_running", self._pod_labels(pod), values)
            yield from family("time_to_first_token_seconds", "histogram")
            for pod in inference:
                total, count = [COUNTER_BASE], [int(COUNTER_BASE)]
                for k in range(1, self.samples):
                    seconds_added, requests = self.ttft_increase(pod.index, k)
                    total.append(total[-1] + seconds_added)
                    count.append(count[-1] + requests)
                labels = self._pod_labels(pod)
                yield from series("time_to_first_token_seconds_bucket", f'{labels},le="+Inf"', count)
                yield from series("time_to_first_token_seconds_sum", labels, total)
                yield from series("time_to_first_token_seconds_count", labels, count)
        yield "# EOF\n"

    # --- what an agent would have pushed for the whole workload ------------------------------------

    def workload_series(self, metric: str) -> tuple[list[int], list[float]]:
        """The workload-level series, sample by sample: the mean utilisation over its GPUs, the sums
        of bytes and cores over its pods, the mean time to first token of the requests finished
        (copies of the lists, which are worked out once per metric)."""
        if metric not in self._series:
            self._series[metric] = self._workload_series(metric)
        times, values = self._series[metric]
        return list(times), list(values)

    def _workload_series(self, metric: str) -> tuple[list[int], list[float]]:
        times = list(self.times())
        pods, k_all = self.pods, range(self.samples)
        gpus = [(p.index, g) for p in pods for g in range(p.gpus)]
        if metric == "GPU_UTILIZATION":
            return times, [sum(self.utilisation(p, g, k) for p, g in gpus) / len(gpus) for k in k_all]
        if metric == "GPU_MEMORY_USAGE_BYTES":
            return times, [float(sum(self.frame_buffer_mib(p, g, k) for p, g in gpus) * MIB) for k in k_all]
        if metric == "NVLINK_BANDWIDTH_TOTAL":
            return times, [
                float(sum(self.nvlink(p, g, k, d) for p, g in gpus for d in (0, 1))) for k in k_all
            ]
        if metric == "CPU_USAGE_CORES":
            return times[1:], [sum(self.cores(p.index, k) for p in pods) for k in k_all[1:]]
        if metric == "CPU_MEMORY_USAGE_BYTES":
            return times, [float(sum(self.working_set(p.index, k) for p in pods)) for k in k_all]
        serving = [p.index for p in pods if p.inference]
        if metric == "NIM_NUM_REQUESTS_RUNNING":
            return times, [float(sum(self.requests_running(p, k) for p in serving)) for k in k_all]
        if metric == "NIM_TIME_TO_FIRST_TOKEN_SECONDS":
            values = []
            for k in k_all[1:]:
                added = [self.ttft_increase(p, k) for p in serving]
                values.append(sum(s for s, _ in added) / sum(n for _, n in added))
            return times[1:], values
        raise KeyError(metric)


class PrometheusServer:
    """One private Prometheus under ``root``, serving the blocks backfilled from a ``Fleet``."""

    def __init__(
        self,
        root: Path,
        fleets: list[Fleet],
        *,
        retention_days: int = 3650,
        max_block_hours: int = 24,
        web_config: Path | None = None,
        ready_check: dict[str, Any] | None = None,
    ) -> None:
        """``max_block_hours``: the longest block the backfill writes (``promtool`` takes about three
        times the CPU for a week cut into days as for a week in one block); ``web_config``: Prometheus'
        web configuration (TLS, basic auth); ``ready_check``: what the readiness probe then needs
        (httpx's ``verify``, ``auth``)."""
        self.root = root
        self.fleets = fleets
        self.retention_days = retention_days
        self.max_block_hours = max_block_hours
        self.web_config = web_config
        self.ready_check = ready_check or {}
        self.port = free_port()
        tls = web_config is not None and "tls_server_config" in web_config.read_text()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.data = root / "data"

    def backfill(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        source = self.root / "series.om.txt"
        with source.open("w") as out:
            # One exposition: every fleet's families, each family contiguous across fleets.
            chunks = [list(fleet.openmetrics()) for fleet in self.fleets]
            families: dict[str, list[str]] = {}
            for chunk in chunks:
                name = ""
                for text in chunk:
                    if text.startswith("# TYPE "):
                        name = text.split()[2]
                        families.setdefault(name, [text])
                    elif text != "# EOF\n":
                        families[name].append(text)
            for lines in families.values():
                out.writelines(lines)
            out.write("# EOF\n")
        subprocess.run(
            [
                *("promtool", "tsdb", "create-blocks-from", "openmetrics"),
                f"--max-block-duration={self.max_block_hours}h",
                *(str(source), str(self.data)),
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        source.unlink()

    def start(self) -> PrometheusServer:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
        log = (self.root / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data}",
                f"--storage.tsdb.retention.time={self.retention_days}d",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *([f"--web.config.file={self.web_config}"] if self.web_config else []),
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        # One client (``verify``, ``auth``): ``httpx.get`` loads the CA bundle on each try.
        with httpx.Client(timeout=1, **self.ready_check) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"prometheus exited with {self.process.returncode}; see {self.root}")
                try:
                    if http.get(f"{self.url}/-/ready").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prometheus was not ready within {READY_TIMEOUT_S} s; see {self.root}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        self.process = None
