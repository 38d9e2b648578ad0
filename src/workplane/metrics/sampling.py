"""The sampling rule of docs/contract.md §8, in one place, whatever stores the samples.

With ``numberOfSamples = N >= 2`` the points are at ``t_i = start + i * step``,
``step = (end - start) / (N - 1)``, i = 0..N-1; ``N = 1`` gives one point at ``end`` with
``step = end - start``. A measured point is the mean of the samples in ``(t_i - step, t_i]``; a derived
point is the series' value at ``t_i``; a point with nothing to show is left out. ``N = 0`` gives the raw
samples in ``[start, end]``.

Sample times are integer milliseconds while ``t_i`` may fall between two of them, so every bound is
compared as ``floor(t_i)``: for an integer ``s``, ``s <= t`` exactly when ``s <= floor(t)`` and
``s > t`` exactly when ``s > floor(t)``. The window of point i begins where the window of point i-1
ends, so the N windows are cut by N+1 bounds and every sample counts in at most one point. A point's
timestamp is ``floor(t_i)`` (the wire shows milliseconds).
"""

from __future__ import annotations

import operator
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from workplane.metrics.series import Samples

MAX_POINTS = 1000
_COMMON_SCALE = 10**6  # every stored scale (10**k, k <= 6) divides it, so scaled sums add exactly

Point = tuple[int, float]  # (epoch ms, value)


class InvalidWindow(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Grid:
    """The points a request asks for. ``bounds[j]`` is ``floor(t)`` of point j-1 (``bounds[0]`` is
    the start of the first window), so point j covers ``(bounds[j], bounds[j + 1]]`` and sits at
    ``bounds[j + 1]``. Empty for ``N = 0`` (raw)."""

    start_ms: int
    end_ms: int
    count: int
    bounds: tuple[int, ...]

    @property
    def raw(self) -> bool:
        return self.count == 0

    @property
    def times(self) -> Sequence[int]:
        return self.bounds[1:]


def grid(start_ms: int, end_ms: int, count: int) -> Grid:
    if start_ms >= end_ms:
        raise InvalidWindow("start must be before end")
    if not 0 <= count <= MAX_POINTS:
        raise InvalidWindow(f"numberOfSamples must be within 0..{MAX_POINTS}")
    if count == 0:
        return Grid(start_ms, end_ms, 0, ())
    span = end_ms - start_ms
    divisions = max(count - 1, 1)
    first = 0 if count >= 2 else 1  # N = 1: the single point is at end
    # floor(start + i * span / divisions) for i = first-1 .. divisions; Python's // floors negatives.
    bounds = tuple(start_ms + (i * span) // divisions for i in range(first - 1, divisions + 1))
    return Grid(start_ms, end_ms, count, bounds)


def _merged(blocks: list[Samples]) -> list[Samples]:
    """The blocks as non-overlapping runs. Blocks that overlap in time (a batch re-sent with other
    boundaries) are merged into one run, one value per instant, the later block's winning."""
    blocks = sorted((b for b in blocks if len(b)), key=lambda b: b.times[0])
    if all(a.times[-1] < b.times[0] for a, b in pairwise(blocks)):
        return blocks
    by_time: dict[int, float] = {}
    for block in blocks:
        by_time.update(zip(block.times, block.floats(), strict=True))
    times = sorted(by_time)
    return [Samples(times, [by_time[t] for t in times], 0)]


def sample_measured(blocks: Iterable[Samples], window: Grid) -> list[Point]:
    """Means of the samples per point (or the raw samples in ``[start, end]`` for ``N = 0``)."""
    runs = _merged(list(blocks))
    if window.raw:
        return _raw(runs, window.start_ms, window.end_ms)
    bounds = window.bounds
    points = len(bounds) - 1
    counts = [0] * points
    exact = [0] * points  # sums in units of 1 / _COMMON_SCALE
    inexact = [0.0] * points  # sums of float-valued runs
    for run in runs:
        times, values = run.times, run.values
        # Only the bounds around this run: windows j_lo .. j_hi - 1.
        j_lo = max(bisect_left(bounds, times[0]) - 1, 0)
        j_hi = min(bisect_left(bounds, times[-1]) + 1, points)
        pairs = list(pairwise(_positions(times, bounds[j_lo : j_hi + 1])))
        # Whole-list operations (C loops), not a Python loop per window: slicing and summing a
        # window's few dozen values costs less than building prefix sums over the whole run.
        run_counts = [hi - lo for lo, hi in pairs]
        run_sums = [sum(values[lo:hi]) for lo, hi in pairs]
        counts[j_lo:j_hi] = map(operator.add, counts[j_lo:j_hi], run_counts)
        if run.scale:
            factor = _COMMON_SCALE // run.scale
            exact[j_lo:j_hi] = map(operator.add, exact[j_lo:j_hi], [int(v) * factor for v in run_sums])
        else:
            inexact[j_lo:j_hi] = map(operator.add, inexact[j_lo:j_hi], run_sums)
    # One correctly rounded division where the sum is exact: 1.1 and 1.2 average to 1.15.
    return [
        (
            bounds[j + 1],
            exact[j] / (_COMMON_SCALE * n) if not inexact[j] else (exact[j] / _COMMON_SCALE + inexact[j]) / n,
        )
        for j, n in enumerate(counts)
        if n
    ]


def _positions(times: Sequence[int], bounds: Sequence[int]) -> list[int]:
    """For each bound, how many of ``times`` are at or before it (``bisect_right``), computed
    directly when the times are evenly spaced (a ``range``), where bisecting would build each probed
    item."""
    if isinstance(times, range):
        first, step, n = times.start, times.step, len(times)
        positions = [(b - first) // step + 1 for b in bounds]
        # The caller passes the bounds around the run: only the first can lie before it, only the
        # last two after it (the one before last is the first bound at or after its last sample).
        for i in {0, len(positions) - 2, len(positions) - 1} - {-1}:
            positions[i] = min(max(positions[i], 0), n)
        return positions
    return [bisect_right(times, b) for b in bounds]


def _raw(runs: list[Samples], start_ms: int, end_ms: int) -> list[Point]:
    result: list[Point] = []
    for run in runs:
        lo, hi = bisect_left(run.times, start_ms), bisect_right(run.times, end_ms)
        if hi > lo:
            result.extend(zip(run.times[lo:hi], run.floats(lo, hi), strict=True))
    return result


@dataclass(frozen=True, slots=True)
class Steps:
    """A derived series as a step function: ``values[i]`` holds from ``times[i]`` until the next
    change (None: no value then), within ``[valid_from, valid_until)`` — when the workload existed."""

    times: Sequence[int]
    values: Sequence[float | None]
    valid_from: int
    valid_until: int

    def at(self, t: int) -> float | None:
        if not self.valid_from <= t < self.valid_until:
            return None
        i = bisect_right(self.times, t) - 1
        return self.values[i] if i >= 0 else None


def sample_derived(steps: Steps, window: Grid) -> list[Point]:
    """The series' value at each point (left out where it has none). ``N = 0``: its value at ``start``
    and then every change in ``(start, end]`` — the raw form of a step function."""
    if window.raw:
        moments = [window.start_ms]
        lo, hi = bisect_right(steps.times, window.start_ms), bisect_right(steps.times, window.end_ms)
        moments += [t for t in steps.times[lo:hi] if t != moments[-1]]
    else:
        moments = list(window.times)
    points: list[Point] = []
    for t in moments:
        value = steps.at(t)
        if value is not None:
            points.append((t, value))
    return points
