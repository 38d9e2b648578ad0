"""Resolved callers, cached for a moment so that a request costs no extra database read.

A token names its key; the key's state (revoked or not) and its access rules are read once and kept
for ``ttl_s``. A change made through this process (grant, revoke, rotate) clears the cache at once;
one made by another server process is seen here within ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from workplane.auth.rules import Access


class AccessCache:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[str, tuple[float, Access | None]] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str) -> tuple[bool, Access | None]:
        """(found, access): ``found`` is False when the caller must be loaded."""
        hit = self._entries.get(client_id)
        if hit is None or hit[0] < self.clock():
            return False, None
        return True, hit[1]

    def put(self, client_id: str, access: Access | None) -> None:
        with self._lock:
            if len(self._entries) > 10_000:  # tokens of many keys: start afresh rather than grow
                self._entries.clear()
            self._entries[client_id] = (self.clock() + self.ttl_s, access)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
