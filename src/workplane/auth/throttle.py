"""Slowing down guessers at the token endpoint without locking the owner out for long.

Failed token requests are counted per client id and per address. The first few are free; after them
each further failure closes the door for a delay that doubles per failure, up to ``max_delay_s``
(answered 429 with ``Retry-After``, before any secret is checked). Failures are forgotten after
``forget_s`` without one, and a success clears its client id. An address that has recently obtained a
token for a client id passes that client id's throttle (not its own address's): someone guessing the
secret of a well-known client id from elsewhere does not lock its owner out.

The counts live in the process: with several server processes each throttles on its own (the limits
hold per process), which bounds a guesser all the same.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Record:
    failures: int
    last_failure: float
    blocked_until: float


class Throttle:
    def __init__(
        self,
        *,
        free_failures: int,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        forget_s: float = 900.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_s = forget_s
        self.max_entries = max_entries
        self.clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def _current(self, key: str, now: float) -> _Record | None:
        record = self._records.get(key)
        if record is not None and now - record.last_failure > self.forget_s and now >= record.blocked_until:
            del self._records[key]
            return None
        return record

    def retry_after(self, key: str) -> int:
        """Seconds to wait before ``key`` may try again (0: now)."""
        with self._lock:
            now = self.clock()
            record = self._current(key, now)
            if record is None or now >= record.blocked_until:
                return 0
            return max(1, math.ceil(record.blocked_until - now))

    def failed(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            record = self._current(key, now) or _Record(0, now, now)
            record.failures += 1
            record.last_failure = now
            over = record.failures - self.free_failures
            if over > 0:
                delay = min(self.max_delay_s, self.base_delay_s * 2 ** (over - 1))
                record.blocked_until = now + delay
            self._records[key] = record
            self._records.move_to_end(key)
            while len(self._records) > self.max_entries:  # bounded memory under a flood of ids
                self._records.popitem(last=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)


class TokenThrottle:
    """The token endpoint's two throttles and its memory of addresses that succeeded."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.by_client = Throttle(free_failures=5, clock=clock)
        self.by_address = Throttle(free_failures=20, clock=clock)
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._known_for_s = 86_400.0
        self._lock = threading.Lock()
        self.clock = clock

    def _is_known(self, client_id: str, address: str) -> bool:
        with self._lock:
            at = self._known.get((client_id, address))
            return at is not None and self.clock() - at < self._known_for_s

    def retry_after(self, client_id: str, address: str) -> int:
        wait = self.by_address.retry_after(address)
        if not self._is_known(client_id, address):
            wait = max(wait, self.by_client.retry_after(client_id))
        return wait

    def failed(self, client_id: str, address: str) -> None:
        self.by_address.failed(address)
        self.by_client.failed(client_id)

    def succeeded(self, client_id: str, address: str) -> None:
        self.by_client.succeeded(client_id)
        self.by_address.succeeded(address)
        with self._lock:
            self._known[(client_id, address)] = self.clock()
            self._known.move_to_end((client_id, address))
            while len(self._known) > 100_000:
                self._known.popitem(last=False)
