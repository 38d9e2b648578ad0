"""The seam between the metrics endpoint and whatever keeps the samples.

A back end only reads samples; the sampling rule (``metrics.sampling``) is applied to what it returns,
so every back end answers under the same rule. The embedded store (``metrics.store.ChunkStore``) is one;
a Prometheus back end would be another: ``read`` maps to a range query returning the raw samples of
the series (``query_range`` of the bare series, or the ``/api/v1/query`` form ``series[window]``).
"""

from __future__ import annotations

from typing import Protocol

from workplane.domain.observation import MeasuredMetric
from workplane.metrics.series import Samples


class SeriesUnavailable(RuntimeError):
    """The back end could not answer for this series (unreachable, timed out): the request is then
    answered 207, without this type."""


class SampleSource(Protocol):
    def read(self, workload_id: str, metric: MeasuredMetric, after_ms: int, until_ms: int) -> list[Samples]:
        """Runs of the series' samples that include every sample with ``after_ms < t <= until_ms``
        (they may include more), in any order; raises ``SeriesUnavailable``."""
        ...
