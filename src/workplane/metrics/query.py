"""Answering ``GET /workloads/{id}/metrics``: which types can be served, and their points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from workplane.metrics.backend import SampleSource, SeriesUnavailable
from workplane.metrics.sampling import Grid, Point, sample_derived, sample_measured
from workplane.metrics.store import WorkloadFacts, history_steps
from workplane.metrics.types import DERIVED, WorkloadMetricType, measured, servable


@dataclass(frozen=True, slots=True)
class Measurement:
    type: WorkloadMetricType
    points: list[Point]


@dataclass(frozen=True, slots=True)
class MetricsAnswer:
    measurements: list[Measurement]  # the types that could be answered, in the order asked
    unavailable: list[WorkloadMetricType]  # the types that could not (the answer is then 207)


def workload_metrics(
    connection: sa.Connection,
    source: SampleSource,
    workload: WorkloadFacts,
    types: Sequence[WorkloadMetricType],
    window: Grid,
    now_ms: int,
) -> MetricsAnswer:
    derived = [t.value for t in types if t in DERIVED]
    steps = history_steps(connection, workload, derived, now_ms) if derived else {}
    # A measured point at t needs the samples in (t - step, t]: from the first window's start.
    after = window.bounds[0] if not window.raw else window.start_ms - 1
    until = window.end_ms
    answered: list[Measurement] = []
    unavailable: list[WorkloadMetricType] = []
    for metric in types:
        if not servable(metric, workload.type):
            unavailable.append(metric)
        elif metric in DERIVED:
            answered.append(Measurement(metric, sample_derived(steps[metric.value], window)))
        else:
            series = measured(metric)
            assert series is not None  # servable() checked it
            try:
                blocks = source.read(workload.id, series, after, until)
            except SeriesUnavailable:
                unavailable.append(metric)
                continue
            answered.append(Measurement(metric, sample_measured(blocks, window)))
    return MetricsAnswer(answered, unavailable)
