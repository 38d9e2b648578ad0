"""The chunk encoding: exact round trips, compactness on realistic series, the old format still read."""

from __future__ import annotations

import math
import random

import pytest

from workplane.metrics import codec

START = 1_714_557_600_000


def _roundtrip(times: list[int], values: list[float]) -> bytes:
    data = codec.encode(times, values)
    assert codec.decode(data) == (times, [float(v) for v in values])
    return data


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 500, 5760])
def test_round_trip_of_every_kind_of_series(n: int) -> None:
    rng = random.Random(n)
    regular = [START + 15_000 * i for i in range(n)]
    jittered = [START + 15_000 * i + rng.randint(0, 40) for i in range(n)]
    for times in (regular, jittered):
        _roundtrip(times, [rng.randint(0, 800) / 8 for _ in range(n)])  # mean of 8 integer percents
        _roundtrip(times, [4096 * rng.randint(10**5, 10**6) for _ in range(n)])  # bytes, whole pages
        _roundtrip(times, [rng.random() * 1e9 for _ in range(n)])  # arbitrary floats: raw
        _roundtrip(times, [0.0] * n)
        _roundtrip(times, [rng.choice([-1.5, 1e15, 0.000001]) for _ in range(n)])


def test_regular_times_decode_without_a_list() -> None:
    chunk = codec.decode_chunk(codec.encode([START, START + 15_000, START + 30_000], [1, 2, 3]))
    assert isinstance(chunk.times, range)
    assert chunk.values == [1, 2, 3]
    assert chunk.scale == 1


def test_realistic_utilisation_is_compact() -> None:
    rng = random.Random(7)
    n = 5760  # a day of 15-second samples
    level = [60 + 30 * math.sin(i / 200) for i in range(n)]
    values = [sum(min(100, max(0, round(v + rng.gauss(0, 4)))) for _ in range(8)) / 8 for v in level]
    data = _roundtrip([START + 15_000 * i for i in range(n)], values)
    assert len(data) / n < 2.5


def test_invalid_input() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        codec.encode([1, 2], [1.0])
    with pytest.raises(ValueError, match="finite"):
        codec.encode([1], [math.nan])
    with pytest.raises(ValueError, match="at least one"):
        codec.encode([], [])


def test_version_1_chunks_are_still_read() -> None:
    # Version 1: count 2, scale 1, times 1000 and 1015 (zig-zag varints), values 87.5 and 91.0.
    data = bytes([1, 2, 1, 0xD0, 0x0F, 0x1E, 0xD6, 0x0D, 0x46])
    assert codec.decode(data) == ([1000, 1015], [87.5, 91.0])
