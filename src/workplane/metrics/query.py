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
    derived = derived_points(connection, workload, types, window, now_ms)
    return assemble(types, derived, measured_points(source, workload, types, window))


def derived_points(
    connection: sa.Connection,
    workload: WorkloadFacts,
    types: Sequence[WorkloadMetricType],
    window: Grid,
    now_ms: int,
) -> dict[WorkloadMetricType, list[Point]]:
    """The points of the derived types asked for, from the workload's history."""
    derived = [t for t in types if t in DERIVED]
    if not derived:
        return {}
    steps = history_steps(connection, workload, [t.value for t in derived], now_ms)
    return {t: sample_derived(steps[t.value], window) for t in derived}


def measured_points(
    source: SampleSource | MeasuredSource,
    workload: WorkloadFacts,
    types: Sequence[WorkloadMetricType],
    window: Grid,
) -> dict[WorkloadMetricType, list[Point]]:
    """The points of the measured types asked for that this workload and source can serve. A
    ``MeasuredSource`` needs no store connection: the route calls it after its read transaction."""
    wanted = [t for t in types if t not in DERIVED and servable(t, workload.type)]
    if not wanted:
        return {}
    if isinstance(source, MeasuredSource):
        return source.measure(wanted, window)
    return _from_samples(source, workload.id, wanted, window)


def assemble(
    types: Sequence[WorkloadMetricType],
    derived: dict[WorkloadMetricType, list[Point]],
    measured: dict[WorkloadMetricType, list[Point]],
) -> MetricsAnswer:
    """The answer in the order asked; a type in neither is unavailable (207)."""
    answered: list[Measurement] = []
    unavailable: list[StrEnum] = []
    for metric in types:
        points = derived.get(metric, measured.get(metric))
        if points is None:
            unavailable.append(metric)
        else:
            answered.append(Measurement(metric, points))
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
