"""Which allocated GPUs are idle (``idleAllocatedGpus`` / ``idleGpus``), from GPU_UTILIZATION samples.

The rule (docs/decisions/0008-workload-metrics.md): GPU_UTILIZATION is the mean over the workload's allocated
GPUs, so it is 0 exactly when every one of them is at 0. The allocated GPUs are idle when the trailing
run of zero samples — from the first 0 after the last non-zero sample to the latest sample — lasts more
than 5 minutes. Then ``idleAllocatedGpus`` is the allocation (``allocatedResources.gpu``, fractions
included) and ``idleGpus`` its whole devices (rounded down); otherwise both are 0. A workload without
any GPU_UTILIZATION sample keeps whatever its agent reported (null when nothing).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from workplane.metrics.series import Samples

IDLE_AFTER_MS = 5 * 60 * 1000


def gpus_idle(newest_first: Iterable[Samples]) -> bool | None:
    """Whether the trailing zero run lasts more than ``IDLE_AFTER_MS``; None without samples.
    ``newest_first``: runs of the series, the latest first (only as many are read as needed)."""
    last: int | None = None
    for run in newest_first:
        times, values = run.times, run.values
        for i in range(len(times) - 1, -1, -1):
            if last is None:
                last = times[i]
            if values[i] != 0:
                return False
            if last - times[i] > IDLE_AFTER_MS:
                return True  # a zero this long before the latest sample, and nothing but zeros since
    return None if last is None else False


def idle_fields(idle: bool, allocated_gpu: float | None) -> tuple[int, float]:
    """(idleGpus, idleAllocatedGpus) for a workload whose GPUs are / are not idle."""
    if not idle or not allocated_gpu or allocated_gpu < 0:
        return 0, 0.0
    return math.floor(allocated_gpu), float(allocated_gpu)
