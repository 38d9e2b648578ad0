"""At most a few expensive reads at once per server process, so that one caller cannot take every
database connection and core away from everyone else.

A read is expensive when it asks for many substring predicates (contains, starts/ends-with terms and
search words, ``WorkloadQuery.substring_work``): no index answers those, so such a read may scan the
inventory for seconds. Cheap reads never wait here. An expensive read that finds every slot taken
waits for one briefly (``WAIT_S``), then is answered 429 with ``Retry-After``: not queued for longer,
because every waiting request holds a thread of the server, and a long queue would starve cheap
reads of threads the way unbounded heavy reads starve them of pool connections; not refused at once,
because a client that retries at once would then spin the server's CPU on refusals.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from workplane.api.errors import ApiError
from workplane.query.filters import WorkloadQuery

# Fewer substring predicates than this is an ordinary read: the dashboard's search box and filter
# chips stay well under it.
EXPENSIVE_AT = 8
WAIT_S = 0.5


class ExpensiveReads:
    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._free = threading.BoundedSemaphore(slots)

    @contextmanager
    def admit(self, query: WorkloadQuery) -> Iterator[None]:
        if query.substring_work < EXPENSIVE_AT:
            yield
            return
        if not self._free.acquire(timeout=WAIT_S):
            raise ApiError(
                429,
                f"{self.slots} expensive read(s) with {EXPENSIVE_AT} or more contains terms and search "
                "words already running on this server; retry shortly, or narrow the filter",
                headers={"Retry-After": "1"},
            )
        try:
            yield
        finally:
            self._free.release()
