"""The idle-GPU rule (docs/decisions/0008-workload-metrics.md) on hand-made series."""

from __future__ import annotations

from workplane.metrics import codec
from workplane.metrics.idle import IDLE_AFTER_MS, gpus_idle, idle_fields
from workplane.metrics.series import Samples

S = 15_000


def series(values: list[float], start: int = 0) -> Samples:
    return codec.decode_chunk(codec.encode([start + S * i for i in range(len(values))], values))


def test_zeros_for_more_than_five_minutes_are_idle() -> None:
    # 22 zeros span 21 * 15 s = 315 s > 300 s.
    assert gpus_idle([series([50.0] + [0.0] * 22)]) is True


def test_exactly_five_minutes_is_not_more_than_five() -> None:
    # 21 zeros span 300 s: not more than 5 minutes.
    assert 20 * S == IDLE_AFTER_MS
    assert gpus_idle([series([50.0] + [0.0] * 21)]) is False


def test_any_use_restarts_the_clock() -> None:
    assert gpus_idle([series([0.0] * 40 + [0.125] + [0.0] * 5)]) is False


def test_zero_run_across_chunks_newest_first() -> None:
    older = series([0.0] * 15)
    newer = series([0.0] * 10, start=15 * S)
    assert gpus_idle([newer, older]) is True  # 25 samples, 360 s of zeros
    assert gpus_idle([newer]) is False  # only 135 s known


def test_no_samples_no_answer() -> None:
    assert gpus_idle([]) is None


def test_fields() -> None:
    assert idle_fields(True, 2.0) == (2, 2.0)
    assert idle_fields(True, 0.5) == (0, 0.5)
    assert idle_fields(True, None) == (0, 0.0)
    assert idle_fields(False, 4.0) == (0, 0.0)
