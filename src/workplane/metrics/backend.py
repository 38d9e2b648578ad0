"""The seams between the metrics endpoint and whatever keeps the samples.

Two kinds of back end:

- a ``SampleSource`` only reads raw samples, and the sampling rule (``metrics.sampling``) is applied
  to what it returns — the embedded store (``metrics.store.ChunkStore``);
- a ``MeasuredSource`` answers the points of the measured types itself, under the same rule — the
  Prometheus back end (``metrics.prometheus``), which has Prometheus evaluate the means so that the
  raw samples of many pods never cross the network.

Derived series (allocation, requests, limits, pods) always come from the workload's history in the
store (``metrics.query``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from workplane.domain.observation import MeasuredMetric
from workplane.metrics.sampling import Grid, Point
from workplane.metrics.series import Samples
from workplane.metrics.types import WorkloadMetricType


class SeriesUnavailable(RuntimeError):
    """The back end could not answer for this series: the request is then answered 207, without
    this type."""


class BackendUnavailable(RuntimeError):
    """The back end cannot be reached or did not answer in time: the request is answered 503 with
    Retry-After, whatever it asked for."""

    retry_after_s = 5


class SampleSource(Protocol):
    def read(self, workload_id: str, metric: MeasuredMetric, after_ms: int, until_ms: int) -> list[Samples]:
        """Runs of the series' samples that include every sample with ``after_ms < t <= until_ms``
        (they may include more), in any order; raises ``SeriesUnavailable``."""
        ...


@runtime_checkable
class MeasuredSource(Protocol):
    def measure(
        self, metrics: Sequence[WorkloadMetricType], window: Grid
    ) -> dict[WorkloadMetricType, list[Point]]:
        """The points of each of ``metrics`` it can serve; those left out of the answer cannot be
        served (207). Raises ``BackendUnavailable``."""
        ...
