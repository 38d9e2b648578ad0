"""Compact encoding of a chunk of samples (many samples per stored row).

Layout: ``version(1) | count(varint) | scale exponent(1) | timestamps | values``.
- timestamps: the first as a zig-zag varint, then delta-of-delta zig-zag varints — a regular
  15-second series costs one byte per sample;
- values: multiplied by ``10**k`` for the smallest ``k`` in 0..6 that makes every value an integer
  (percentages with one decimal: k = 1), then zig-zag varint deltas; when no such ``k`` exists
  (arbitrary floats) the values are stored as raw little-endian float64 (exponent byte 255).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

VERSION = 1
_RAW = 255


def _zigzag(n: int) -> int:
    # Python integers are unbounded, so this maps ..., -2, -1, 0, 1, 2 to 3, 1, 0, 2, 4 for any size.
    return n << 1 if n >= 0 else ((-n) << 1) - 1


def _unzigzag(n: int) -> int:
    return n >> 1 if not n & 1 else -((n + 1) >> 1)


def _put_varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _get_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _scale(values: Sequence[float]) -> int:
    for k in range(7):
        factor = 10**k
        if all(abs(v * factor - round(v * factor)) < 1e-6 for v in values):
            return k
    return _RAW


def encode(timestamps_ms: Sequence[int], values: Sequence[float]) -> bytes:
    if len(timestamps_ms) != len(values):
        raise ValueError("timestamps and values differ in length")
    if any(not math.isfinite(v) for v in values):
        raise ValueError("sample values must be finite")
    out = bytearray([VERSION])
    _put_varint(out, len(values))
    k = _scale(values)
    out.append(k)
    prev_ts = prev_delta = 0
    for i, ts in enumerate(timestamps_ms):
        if i == 0:
            _put_varint(out, _zigzag(ts))
        else:
            delta = ts - prev_ts
            _put_varint(out, _zigzag(delta - prev_delta))
            prev_delta = delta
        prev_ts = ts
    if k == _RAW:
        out += struct.pack(f"<{len(values)}d", *values)
    else:
        factor = 10**k
        prev = 0
        for v in values:
            scaled = round(v * factor)
            _put_varint(out, _zigzag(scaled - prev))
            prev = scaled
    return bytes(out)


def decode(data: bytes) -> tuple[list[int], list[float]]:
    if not data or data[0] != VERSION:
        raise ValueError("unknown chunk encoding")
    count, pos = _get_varint(data, 1)
    k = data[pos]
    pos += 1
    timestamps: list[int] = []
    prev_ts = prev_delta = 0
    for i in range(count):
        raw, pos = _get_varint(data, pos)
        if i == 0:
            prev_ts = _unzigzag(raw)
        else:
            prev_delta += _unzigzag(raw)
            prev_ts += prev_delta
        timestamps.append(prev_ts)
    if k == _RAW:
        return timestamps, list(struct.unpack_from(f"<{count}d", data, pos))
    factor = 10**k
    values: list[float] = []
    prev = 0
    for _ in range(count):
        raw, pos = _get_varint(data, pos)
        prev += _unzigzag(raw)
        values.append(prev / factor)
    return timestamps, values
