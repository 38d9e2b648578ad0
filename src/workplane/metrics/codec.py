"""Compact encoding of a chunk of samples (many samples per stored row).

Version 2 (written now):
``version(1) | count(varint) | scale exponent(1) | flags(1) | first time | first delta | first value |
divisor | time width(1) | value width(1) | body``
- times: the first as a zig-zag varint, the first delta as one too, then the deltas of the deltas as a
  fixed-width signed array (a regular 15-second series is all zeros);
- values: multiplied by ``10**k`` for the smallest ``k`` in 0..6 that makes every value an integer
  (percent as a mean over 8 GPUs: k = 3), then their deltas divided by the deltas' greatest common
  divisor (memory reported in whole pages or MiB steps) as a fixed-width signed array; when no such
  ``k`` exists (arbitrary floats) the values are raw float64 (exponent byte 255);
- body: both arrays byte-shuffled (all first bytes, then all second bytes, …: the high bytes of small
  deltas are runs of 0x00/0xFF) and, for chunks of more than a few samples, zlib-compressed.
Fixed-width arrays are what make decoding fast in Python: ``array.frombytes`` and
``itertools.accumulate`` run in C, so a day of 15-second samples decodes in well under a millisecond,
where a varint loop in Python took tens of milliseconds for a week.

Version 1 (varint deltas, no compression) is still decoded.
"""

from __future__ import annotations

import math
import operator
import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from itertools import accumulate

from workplane.metrics.series import Samples

VERSION_1 = 1
VERSION = 2
_RAW = 255
_ZLIB = 1  # flag: the body is zlib-compressed
_COMPRESS_FROM = 8  # samples; below this zlib's own header costs more than it saves
_LIMIT = 2**62  # scaled integers beyond this are stored as raw floats (array widths are at most 64 bits)
_WIDTHS = ((1, "b"), (2, "h"), (4, "i"), (8, "q"))
_CODE_OF = dict(_WIDTHS)
_BIG_ENDIAN = sys.byteorder == "big"


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


def _exponent_candidate(values: Sequence[float]) -> int | None:
    """The exponent that the first values need (a cheap guess, verified on all values after)."""
    probe = values[:64]
    for k in range(7):
        factor = 10**k
        if all(abs(v * factor - round(v * factor)) < 1e-6 for v in probe):
            return k
    return None


def _scaled(values: Sequence[float]) -> tuple[int, list[int]]:
    """The smallest ``k`` that makes ``values * 10**k`` integers (within float noise), and those
    integers; ``(255, [])`` when there is none. Every pass over the values is a C-level ``map``."""
    k = _exponent_candidate(values)
    while k is not None and k < 7:
        factor = 10**k
        scaled = [v * factor for v in values] if k else list(values)
        try:
            rounded = list(map(round, scaled))
        except OverflowError:  # a value too large to scale: raw floats
            return _RAW, []
        if max(map(abs, map(operator.sub, scaled, rounded))) < 1e-6:
            if max(map(abs, rounded)) >= _LIMIT:
                return _RAW, []
            return k, rounded
        k += 1
    return _RAW, []


def _width(numbers: Sequence[int]) -> int:
    if not numbers:
        return 1
    low, high = min(numbers), max(numbers)
    for width, _code in _WIDTHS:
        bound = 1 << (8 * width - 1)
        if -bound <= low and high < bound:
            return width
    raise ValueError("delta out of range")  # unreachable: scaled values are below 2**62


def _shuffled(numbers: Sequence[int] | Sequence[float], code: str) -> bytes:
    packed = array(code, numbers)
    if _BIG_ENDIAN:
        packed.byteswap()
    raw = packed.tobytes()
    width = packed.itemsize
    return raw if width == 1 else b"".join(raw[i::width] for i in range(width))


def _unshuffled(data: bytes, code: str, count: int) -> array:  # type: ignore[type-arg]
    width = array(code).itemsize
    if width == 1:
        raw = data
    else:
        buffer = bytearray(len(data))
        for i in range(width):
            buffer[i::width] = data[i * count : (i + 1) * count]
        raw = bytes(buffer)
    numbers = array(code)
    numbers.frombytes(raw)
    if _BIG_ENDIAN:
        numbers.byteswap()
    return numbers


def encode(timestamps_ms: Sequence[int], values: Sequence[float]) -> bytes:
    n = len(values)
    if len(timestamps_ms) != n:
        raise ValueError("timestamps and values differ in length")
    if n == 0:
        raise ValueError("a chunk holds at least one sample")
    # One C-level sum first; the per-value test only when it is not finite (or overflowed).
    if not math.isfinite(sum(values)) and not all(map(math.isfinite, values)):
        raise ValueError("sample values must be finite")
    k, ints = _scaled(values)
    out = bytearray([VERSION])
    _put_varint(out, n)
    out.append(k)
    out.append(_ZLIB if n >= _COMPRESS_FROM else 0)
    _put_varint(out, _zigzag(timestamps_ms[0]))
    deltas = list(map(operator.sub, timestamps_ms[1:], timestamps_ms[:-1]))
    _put_varint(out, _zigzag(deltas[0] if deltas else 0))
    dod = list(map(operator.sub, deltas[1:], deltas[:-1]))
    time_width = _width(dod)
    body = _shuffled(dod, _CODE_OF[time_width])
    if k == _RAW:
        value_width = 8
        body += _shuffled(values, "d")
    else:
        _put_varint(out, _zigzag(ints[0]))
        steps = list(map(operator.sub, ints[1:], ints[:-1]))
        divisor = math.gcd(*steps) or 1
        if divisor > 1:
            steps = [s // divisor for s in steps]
        _put_varint(out, divisor)
        value_width = _width(steps)
        body += _shuffled(steps, _CODE_OF[value_width])
    out.append(time_width)
    out.append(value_width)
    out += zlib.compress(body, 6) if n >= _COMPRESS_FROM else body
    return bytes(out)


def decode(data: bytes) -> tuple[list[int], list[float]]:
    """The chunk's sample times (epoch ms, increasing) and values."""
    samples = decode_chunk(data)
    return list(samples.times), samples.floats()


def decode_chunk(data: bytes) -> Samples:
    if not data:
        raise ValueError("empty chunk")
    if data[0] == VERSION_1:
        return Samples(*_decode_v1(data), 0)
    if data[0] != VERSION:
        raise ValueError("unknown chunk encoding")
    count, pos = _get_varint(data, 1)
    k, flags = data[pos], data[pos + 1]
    pos += 2
    raw_first, pos = _get_varint(data, pos)
    raw_delta, pos = _get_varint(data, pos)
    first_value = divisor = 0
    if k != _RAW:
        raw_value, pos = _get_varint(data, pos)
        first_value = _unzigzag(raw_value)
        divisor, pos = _get_varint(data, pos)
    time_width, value_width = data[pos], data[pos + 1]
    body = data[pos + 2 :]
    if flags & _ZLIB:
        body = zlib.decompress(body)
    first, delta = _unzigzag(raw_first), _unzigzag(raw_delta)
    dod_count = max(count - 2, 0)
    split = dod_count * time_width
    times: Sequence[int]
    if count == 1:
        times = range(first, first + 1)
    elif body.count(0, 0, split) == split:
        times = range(first, first + count * delta, delta)  # evenly spaced: nothing to build
    else:
        dod = _unshuffled(body[:split], _CODE_OF[time_width], dod_count)
        times = list(accumulate(accumulate(dod, initial=delta), initial=first))
    if k == _RAW:
        return Samples(times, list(_unshuffled(body[split:], "d", count)), 0)
    steps = _unshuffled(body[split:], _CODE_OF[value_width], count - 1)
    scaled = list(accumulate(map(divisor.__mul__, steps) if divisor != 1 else steps, initial=first_value))
    return Samples(times, scaled, 10**k)


def _decode_v1(data: bytes) -> tuple[list[int], list[float]]:
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
