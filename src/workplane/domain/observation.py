"""What an agent reports through the sync protocol, and the derived values kept as history."""

from __future__ import annotations

import math
import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from workplane.domain.record import WorkloadIn, allocated_gpu
from workplane.domain.values import TimeMs


class Observation(WorkloadIn):
    """One workload as an agent saw it. ``revision`` orders observations of the same workload (the
    Kubernetes resourceVersion, or the observation time in ms); an observation whose revision is not
    newer than the stored one changes nothing. ``deletedAt`` reports the deletion."""

    # Optional here (an agent may leave it out): ``store.ingest.check_batch`` fills in the batch's cluster
    # before anything reads it. Validating a whole batch in one call (``services.ingest``) leaves no earlier
    # point at which to default it.
    cluster_id: uuid.UUID | None = Field(default=None, alias="clusterId")  # type: ignore[assignment]
    revision: int = Field(ge=0, le=2**62)
    observed_at: datetime | None = Field(default=None, alias="observedAt")
    deleted_at: datetime | None = Field(default=None, alias="deletedAt")


class MeasuredMetric(StrEnum):
    GPU_UTILIZATION = "GPU_UTILIZATION"
    GPU_MEMORY_USAGE_BYTES = "GPU_MEMORY_USAGE_BYTES"
    CPU_USAGE_CORES = "CPU_USAGE_CORES"
    CPU_MEMORY_USAGE_BYTES = "CPU_MEMORY_USAGE_BYTES"
    NVLINK_BANDWIDTH_TOTAL = "NVLINK_BANDWIDTH_TOTAL"
    NIM_NUM_REQUESTS_RUNNING = "NIM_NUM_REQUESTS_RUNNING"
    NIM_NUM_REQUESTS_WAITING = "NIM_NUM_REQUESTS_WAITING"
    NIM_NUM_REQUEST_MAX = "NIM_NUM_REQUEST_MAX"
    NIM_REQUEST_SUCCESS_TOTAL = "NIM_REQUEST_SUCCESS_TOTAL"
    NIM_REQUEST_FAILURE_TOTAL = "NIM_REQUEST_FAILURE_TOTAL"
    NIM_GPU_CACHE_USAGE_PERC = "NIM_GPU_CACHE_USAGE_PERC"
    NIM_TIME_TO_FIRST_TOKEN_SECONDS = "NIM_TIME_TO_FIRST_TOKEN_SECONDS"  # noqa: S105 (a metric name)
    NIM_E2E_REQUEST_LATENCY_SECONDS = "NIM_E2E_REQUEST_LATENCY_SECONDS"


class SampleSeries(BaseModel):
    """Samples of one measured metric of one workload: parallel arrays of epoch-ms times and values."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", allow_inf_nan=False)

    workload_id: str = Field(alias="workloadId", pattern=r"^[0-9a-fA-F-]{36}$")
    metric: MeasuredMetric
    timestamps: list[TimeMs] = Field(min_length=1, max_length=100_000)
    values: list[float] = Field(min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _aligned(self) -> SampleSeries:
        if len(self.timestamps) != len(self.values):
            raise ValueError("timestamps and values must have the same length")
        if any(b <= a for a, b in zip(self.timestamps, self.timestamps[1:], strict=False)):
            raise ValueError("timestamps must be strictly increasing")
        return self


class FullResync(BaseModel):
    """Marks a batch as part of a full resync: every workload the cluster has now is reported in the
    batches carrying this ``id``; the one with ``final: true`` ends it, and every live workload of the
    cluster that none of them reported is then marked deleted."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    final: bool = True


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_SUFFIX = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "m": 10**-3,
}


def quantity_to_number(value: Any) -> float | None:
    """A Kubernetes quantity ("200Mi", "1.5G", 4) as a number; None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _QUANTITY.match(str(value))
        if match is None:
            return None
        text, suffix = match.groups()
        try:
            # exponent form ("1e3") when the suffix is not a unit
            number = float(text) * _SUFFIX[suffix] if suffix in _SUFFIX else float(text + suffix)
        except ValueError:
            return None
    # "1e999" overflows to infinity: unreadable, like any other quantity no store can hold.
    return number if math.isfinite(number) else None


def _resource(resources: dict[str, Any] | None, key: str, part: str) -> float | None:
    entry = (resources or {}).get(key)
    return quantity_to_number(entry.get(part)) if isinstance(entry, dict) else None


def derived_values(w: WorkloadIn) -> dict[str, float | None]:
    """The derived metric quantities of a workload at one moment (docs/contract.md §8)."""
    requested = w.pods_requested_resources or w.workload_requested_resources
    pods = w.requested_pods.get("number") if isinstance(w.requested_pods, dict) else None
    return {
        "GPU_ALLOCATION": allocated_gpu(w),
        "GPU_MEMORY_REQUEST_BYTES": _resource(requested, "gpuMemory", "request"),
        "CPU_REQUEST_CORES": _resource(requested, "cpu", "request"),
        "CPU_LIMIT_CORES": _resource(requested, "cpu", "limit"),
        "CPU_MEMORY_REQUEST_BYTES": _resource(requested, "cpuMemory", "request"),
        "CPU_MEMORY_LIMIT_BYTES": _resource(requested, "cpuMemory", "limit"),
        "POD_COUNT": float(pods) if isinstance(pods, int | float) and not isinstance(pods, bool) else None,
        "RUNNING_POD_COUNT": float(w.running_pods),
    }


def history_key(phase: str, values: dict[str, float | None]) -> str:
    return orjson.dumps({"phase": phase, **values}).decode()
