"""Answering ``GET /workloads/{id}/metrics``: which types can be served, and their points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from workplane.metrics.backend import MeasuredSource, SampleSource, SeriesUnavailable
from workplane.metrics.sampling import Grid, Point, sample_derived, sample_measured
from workplane.metrics.store import WorkloadFacts, history_steps
from workplane.metrics.types import (
    DERIVED,
    PodMetricType,
    WorkloadMetricType,
    as_workload_type,
    measured,
    servable,
)


@dataclass(frozen=True, slots=True)
class Measurement:
    type: StrEnum  # a WorkloadMetricType, or a PodMetricType for a pod's metrics
    points: list[Point]


@dataclass(frozen=True, slots=True)
class MetricsAnswer:
    measurements: list[Measurement]  # the types that could be answered, in the order asked
    unavailable: list[StrEnum]  # the types that could not (the answer is then 207)


def workload_metrics(
    connection: sa.Connection,
    source: SampleSource | MeasuredSource,
    workload: WorkloadFacts,
    types: Sequence[WorkloadMetricType],
    window: Grid,
    now_ms: int,
) -> MetricsAnswer:
    derived = [t.value for t in types if t in DERIVED]
    steps = history_steps(connection, workload, derived, now_ms) if derived else {}
    wanted = [t for t in types if t not in DERIVED and servable(t, workload.type)]
    if isinstance(source, MeasuredSource):
        measured_points = source.measure(wanted, window) if wanted else {}
    else:
        measured_points = _from_samples(source, workload.id, wanted, window)
    answered: list[Measurement] = []
    unavailable: list[StrEnum] = []
    for metric in types:
        if metric in DERIVED:
            answered.append(Measurement(metric, sample_derived(steps[metric.value], window)))
        elif metric in measured_points:
            answered.append(Measurement(metric, measured_points[metric]))
        else:
            unavailable.append(metric)
    return MetricsAnswer(answered, unavailable)


def _from_samples(
    source: SampleSource, workload_id: str, types: Sequence[WorkloadMetricType], window: Grid
) -> dict[WorkloadMetricType, list[Point]]:
    # A measured point at t needs the samples in (t - step, t]: from the first window's start.
    after = window.bounds[0] if not window.raw else window.start_ms - 1
    points: dict[WorkloadMetricType, list[Point]] = {}
    for metric in types:
        series = measured(metric)
        assert series is not None  # servable() checked it
        try:
            blocks = source.read(workload_id, series, after, window.end_ms)
        except SeriesUnavailable:
            continue
        points[metric] = sample_measured(blocks, window)
    return points


def pod_metrics(
    source: MeasuredSource | None, workload_type: str, types: Sequence[PodMetricType], window: Grid
) -> MetricsAnswer:
    """One pod's measured series. Only a ``MeasuredSource`` has them per pod: the embedded store keeps
    one series per workload, so without one every type is unavailable (207)."""
    meant = {t: as_workload_type(t) for t in types}
    wanted = [w for w in meant.values() if w is not None and servable(w, workload_type)]
    found = source.measure(wanted, window) if source is not None and wanted else {}
    answered: list[Measurement] = []
    unavailable: list[StrEnum] = []
    for metric, same in meant.items():
        if same is not None and same in found:
            answered.append(Measurement(metric, found[same]))
        else:
            unavailable.append(metric)
    return MetricsAnswer(answered, unavailable)
