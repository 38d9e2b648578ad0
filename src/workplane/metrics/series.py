"""What every metrics back end hands to the sampling rule: runs of samples of one series."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Samples:
    """Samples of one series in time order: times in epoch ms, strictly increasing (a ``range`` when
    evenly spaced, so a reader can bisect them without building a list), and values. Values are
    integers in units of ``1 / scale`` — exact, so sums over a window are exact — or floats when
    ``scale`` is 0."""

    times: Sequence[int]
    values: Sequence[int] | Sequence[float]
    scale: int

    def __len__(self) -> int:
        return len(self.times)

    def floats(self, start: int = 0, stop: int | None = None) -> list[float]:
        part = self.values[start:stop]
        if self.scale == 0:
            return [float(v) for v in part]
        if self.scale == 1:
            return list(map(float, part))
        # Division, not multiplication by 10**-k: 875 / 10 is exactly 87.5, 875 * 0.1 need not be.
        return list(map(float(self.scale).__rtruediv__, part))
