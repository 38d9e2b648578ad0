"""CPU and memory of running jobs from ``sstat``, as metric samples of the sync protocol.

``sstat --allsteps`` gives each running step's ``TRESUsageInTot``: ``cpu=`` is CPU time used so far
(``[D-]HH:MM:SS``), ``mem=`` resident memory now. A job's values are the sums over its steps. CPU use in
cores is the growth of CPU time between two samples divided by the time between them, so a job's first
sample gives memory only. GPU utilisation is not Slurm's to give: DCGM's exporter and Prometheus carry
it (docs/decisions/0013-slurm-agent.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from workplane.agents.slurm.jobs import memory_mib, tres

JsonObject = dict[str, object]

# sstat gives CPU time in whole seconds, and slurmd adds it up once per accounting period: over a
# short window one more second reads as several cores (a busy job once showed 3.6 cores over a
# quarter of a second). A CPU sample covers at least this long, so the error stays under a fifth of a
# core; the agent samples every 15 s by default.
MIN_CPU_WINDOW_MS = 5_000


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_seconds: float
    memory_bytes: float


def cpu_seconds(text: str) -> float | None:
    """``1-02:03:04``, ``02:03:04``, ``03:04.500`` as seconds."""
    days, _, clock = text.strip().rpartition("-")
    parts = clock.split(":")
    try:
        values = [float(p) for p in parts]
        whole_days = float(days) if days else 0.0
    except ValueError:
        return None
    seconds = 0.0
    for value in values:
        seconds = seconds * 60 + value
    return whole_days * 86_400 + seconds


def job_usage(rows: Iterable[str]) -> dict[str, Usage]:
    """Per job (the id before the step's dot), the sums over its steps."""
    cpu: dict[str, float] = {}
    memory: dict[str, float] = {}
    for row in rows:
        step, _, usage = row.rstrip("\n").partition("|")
        job = step.split(".", 1)[0]
        if not job:
            continue
        values = tres(usage)
        seconds = cpu_seconds(values.get("cpu", ""))
        mib = memory_mib(values.get("mem", ""))
        if seconds is not None:
            cpu[job] = cpu.get(job, 0.0) + seconds
        if mib is not None:
            memory[job] = memory.get(job, 0.0) + mib * 2**20
    return {job: Usage(cpu.get(job, 0.0), memory.get(job, 0.0)) for job in cpu.keys() | memory.keys()}


@dataclass(frozen=True, slots=True)
class Sampled:
    at_ms: int
    cpu_seconds: float


def samples(
    usage: Mapping[str, Usage],
    workloads: Mapping[str, str],
    previous: Mapping[str, Sampled],
    at_ms: int,
) -> tuple[list[JsonObject], dict[str, Sampled]]:
    """Sample series for the jobs in ``usage`` (raw job id → workload id in ``workloads``), and what to
    remember for the next time."""
    series: list[JsonObject] = []
    remembered: dict[str, Sampled] = {}
    for raw_id, used in usage.items():
        workload = workloads.get(raw_id)
        if workload is None:
            continue
        series.append(_series(workload, "CPU_MEMORY_USAGE_BYTES", at_ms, used.memory_bytes))
        before = previous.get(raw_id)
        if before is None or used.cpu_seconds < before.cpu_seconds:  # new, or a step started over
            remembered[raw_id] = Sampled(at_ms, used.cpu_seconds)
        elif at_ms - before.at_ms < MIN_CPU_WINDOW_MS:
            remembered[raw_id] = before  # too short for whole-second CPU times: keep the baseline
        else:
            cores = (used.cpu_seconds - before.cpu_seconds) / ((at_ms - before.at_ms) / 1000)
            series.append(_series(workload, "CPU_USAGE_CORES", at_ms, round(cores, 4)))
            remembered[raw_id] = Sampled(at_ms, used.cpu_seconds)
    return series, remembered


def _series(workload: str, metric: str, at_ms: int, value: float) -> JsonObject:
    return {"workloadId": workload, "metric": metric, "timestamps": [at_ms], "values": [value]}
