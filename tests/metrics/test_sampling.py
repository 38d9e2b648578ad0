"""The sampling rule (docs/contract.md §8) on series whose answers are worked out by hand."""

from __future__ import annotations

import math
import random
from fractions import Fraction
from itertools import pairwise

import pytest

from workplane.metrics import codec
from workplane.metrics.sampling import InvalidWindow, Steps, grid, sample_derived, sample_measured
from workplane.metrics.series import Samples


def run(times: list[int], values: list[float]) -> Samples:
    """Samples as the embedded store hands them over: through the codec."""
    return codec.decode_chunk(codec.encode(times, values))


def test_grid_points_and_windows() -> None:
    # N = 5 over [0, 100]: step 25, points at 0, 25, 50, 75, 100; the first window is (-25, 0].
    g = grid(0, 100, 5)
    assert list(g.times) == [0, 25, 50, 75, 100]
    assert g.bounds == (-25, 0, 25, 50, 75, 100)


def test_means_boundaries_and_gaps() -> None:
    samples = run([0, 25, 26, 50, 100], [1, 2, 4, 8, 16])
    # (-25, 0]: 1 | (0, 25]: 2 | (25, 50]: 4, 8 (25 itself belongs to the point before) |
    # (50, 75]: nothing, left out | (75, 100]: 16
    assert sample_measured([samples], grid(0, 100, 5)) == [(0, 1.0), (25, 2.0), (50, 6.0), (100, 16.0)]


def test_sample_at_window_start_is_excluded_and_at_its_end_included() -> None:
    samples = run([50, 75], [3, 5])
    # Point 75 covers (50, 75]: the sample at 50 is point 50's, not point 75's.
    assert sample_measured([samples], grid(0, 100, 5)) == [(50, 3.0), (75, 5.0)]


def test_one_point_covers_the_whole_range_but_its_start() -> None:
    samples = run([0, 40, 100], [10, 20, 30])
    # N = 1: one point at end, window (start, end]: the sample at start is out.
    assert sample_measured([samples], grid(0, 100, 1)) == [(100, 25.0)]


def test_raw_samples_include_both_ends() -> None:
    samples = run([0, 10, 20, 30, 40], [1, 2, 3, 4, 5])
    assert sample_measured([samples], grid(10, 30, 0)) == [(10, 2.0), (20, 3.0), (30, 4.0)]


def test_fractional_step() -> None:
    # N = 4 over [0, 10]: points at 0, 3.33.., 6.66.., 10, shown at 0, 3, 6, 10.
    samples = run([3, 4, 7, 10], [1, 2, 3, 4])
    # 3 <= 3.33 (point 1); 4 > 3.33 and <= 6.67 (point 2); 7 and 10 in (6.67, 10] (point 3)
    assert sample_measured([samples], grid(0, 10, 4)) == [(3, 1.0), (6, 2.0), (10, 3.5)]


def test_range_before_and_after_the_samples() -> None:
    samples = run([1000, 2000], [1, 2])
    assert sample_measured([samples], grid(0, 500, 10)) == []
    assert sample_measured([samples], grid(3000, 9000, 10)) == []
    assert sample_measured([], grid(0, 9000, 10)) == []


def test_means_are_exact_decimals() -> None:
    samples = run([1, 2], [1.1, 1.2])
    assert sample_measured([samples], grid(0, 10, 1)) == [(10, 1.15)]


def test_runs_in_several_chunks_and_overlapping_resends() -> None:
    first = run([10, 20, 30], [1, 2, 3])
    second = run([40, 50], [4, 5])
    assert sample_measured([second, first], grid(0, 50, 2)) == [(50, 3.0)]  # (-50, 0] empty
    # A re-sent batch with other boundaries repeats instants: each counts once.
    overlapping = run([30, 40, 60], [3, 4, 6])
    assert sample_measured([first, second, overlapping], grid(0, 60, 1)) == [(60, 3.5)]


def test_start_must_be_before_end() -> None:
    with pytest.raises(InvalidWindow):
        grid(100, 100, 5)
    with pytest.raises(InvalidWindow):
        grid(101, 100, 0)
    with pytest.raises(InvalidWindow):
        grid(0, 100, 1001)


def test_derived_value_at_each_point() -> None:
    # Allocation 1 GPU from t=10, 3 GPUs from t=50; the workload existed from 10 until 90.
    steps = Steps([10, 50], [1.0, 3.0], valid_from=10, valid_until=90)
    points = sample_derived(steps, grid(0, 100, 11))
    assert points == [(10, 1.0), (20, 1.0), (30, 1.0), (40, 1.0), (50, 3.0), (60, 3.0), (70, 3.0), (80, 3.0)]


def test_derived_unknown_values_are_left_out() -> None:
    steps = Steps([0, 40], [None, 2.0], valid_from=0, valid_until=1000)
    assert sample_derived(steps, grid(0, 60, 4)) == [(40, 2.0), (60, 2.0)]


def test_derived_raw_is_the_value_at_start_and_every_change() -> None:
    steps = Steps([10, 30, 50, 70], [1.0, 2.0, 1.0, 0.0], valid_from=10, valid_until=1000)
    assert sample_derived(steps, grid(20, 60, 0)) == [(20, 1.0), (30, 2.0), (50, 1.0)]
    assert sample_derived(steps, grid(0, 30, 0)) == [(10, 1.0), (30, 2.0)]


def _by_definition(
    times: list[int], values: list[float], start: int, end: int, n: int
) -> list[tuple[int, float]]:
    """The rule as written, with exact fractions: points t_i, windows (t_i - step, t_i]."""
    if n == 0:
        return [(t, v) for t, v in zip(times, values, strict=True) if start <= t <= end]
    step = Fraction(end - start, max(n - 1, 1))
    moments = [start + i * step for i in range(n)] if n >= 2 else [Fraction(end)]
    points = []
    for t in moments:
        inside = [Fraction(v) for s, v in zip(times, values, strict=True) if t - step < s <= t]
        if inside:
            points.append((math.floor(t), float(sum(inside) / len(inside))))
    return points


@pytest.mark.parametrize("seed", range(40))
def test_random_series_match_the_definition(seed: int) -> None:
    rng = random.Random(seed)
    spacing = rng.choice([1, 7, 15, 1000])
    first = rng.randint(-50, 500)
    count = rng.randint(1, 300)
    regular = seed % 2 == 0  # evenly spaced times decode as a range, the others as a list
    times = (
        [first + spacing * i for i in range(count)]
        if regular
        else sorted(rng.sample(range(first, first + spacing * count * 2), count))
    )
    values = [rng.randint(0, 800) / 8 for _ in times]
    chunks = []
    cut = sorted(rng.sample(range(1, count), min(3, count - 1))) if count > 1 else []
    for lo, hi in pairwise([0, *cut, count]):
        chunks.append(run(times[lo:hi], values[lo:hi]))
    start = rng.randint(first - 200, first + spacing * count)
    end = start + rng.randint(1, spacing * count * 2)
    n = rng.choice([0, 1, 2, 3, 17, 1000])
    expected = _by_definition(times, values, start, end, n)
    assert sample_measured(chunks, grid(start, end, n)) == expected  # exact sums: equal, not close
