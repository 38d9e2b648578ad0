"""Slowing down guessers at the token endpoint without locking the owner out for long.

Every token request is counted as a failure per client id and per address *before* its secret is
checked, and given back if the secret was right. The first few failures are free; after them each
further one closes the door for a delay that doubles per failure, up to ``max_delay_s`` (answered 429
with ``Retry-After``, before any secret is checked). Failures are forgotten after ``forget_s`` without
one. An address that has obtained a token for a client id in the last day passes that client id's
throttle (not its own address's): someone guessing the secret of a well-known client id from elsewhere
does not lock its owner out.

Three properties follow from where the counts live (the store's ``token_throttle`` table, updated in
one write transaction per request):
- concurrent guesses cannot race past the limit: each takes its count before it checks a secret;
- a success gives back its own count only: it does not clear the failures others caused, so holding
  one valid key does not buy unlimited guesses at another;
- every server process sees the same counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from workplane.store.database import insert_ignore, upsert
from workplane.store.schema import token_throttle

t = token_throttle.c


@dataclass(slots=True)
class _Count:
    key: str
    failures: int
    last_ms: int
    blocked_until_ms: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """What ``begin`` decided: a wait (seconds), or 0 and the waits this attempt's count started
    (per key: the wait before it, the wait it set), which a success takes back."""

    wait_s: int
    blocks: dict[str, tuple[int, int]]


class TokenThrottle:
    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        client_free: int = 5,
        address_free: int = 20,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        forget_s: float = 900.0,
        known_for_s: float = 86_400.0,
    ) -> None:
        self.clock = clock
        self.client_free = client_free
        self.address_free = address_free
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_s = forget_s
        self.known_for_s = known_for_s

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def begin(self, connection: sa.Connection, client_id: str, address: str) -> Attempt:
        """In the caller's write transaction: ``wait_s`` 0 when the request may check its secret (it
        is counted as a failure until ``succeeded``), else the seconds it must wait."""
        now = self._now_ms()
        client_key, address_key, known_key = _keys(client_id, address)
        fresh = [
            {"key": k, "failures": 0, "last_ms": now, "blocked_until_ms": 0}
            for k in (client_key, address_key)
        ]
        insert_ignore(connection, token_throttle, fresh)
        counts = _read(connection, [client_key, address_key, known_key])
        client = self._current(counts[client_key], now)
        by_address = self._current(counts[address_key], now)
        known = known_key in counts and now - counts[known_key].last_ms < self.known_for_s * 1000
        wait_ms = max(by_address.blocked_until_ms - now, 0 if known else client.blocked_until_ms - now)
        if wait_ms > 0:
            return Attempt(max(1, math.ceil(wait_ms / 1000)), {})
        before = {client.key: client.blocked_until_ms, by_address.key: by_address.blocked_until_ms}
        self._fail(client, self.client_free, now)
        self._fail(by_address, self.address_free, now)
        _write(connection, [client, by_address])
        return Attempt(0, {c.key: (before[c.key], c.blocked_until_ms) for c in (client, by_address)})

    def succeeded(self, connection: sa.Connection, attempt: Attempt, client_id: str, address: str) -> None:
        """The secret was right: give back this request's count (and the wait it may have started),
        and remember the address."""
        now = self._now_ms()
        client_key, address_key, known_key = _keys(client_id, address)
        counts = _read(connection, [client_key, address_key])
        for count in counts.values():
            count.failures = max(0, count.failures - 1)
            previous, set_by_attempt = attempt.blocks.get(count.key, (count.blocked_until_ms, None))
            if count.blocked_until_ms == set_by_attempt:  # no failure has moved it since
                count.blocked_until_ms = previous
        _write(connection, [*counts.values(), _Count(known_key, 0, now, 0)])

    def purge(self, connection: sa.Connection) -> int:
        """Forget what no longer counts (the retention job calls this): the store holds at most what
        arrived within ``forget_s`` (a day for known addresses)."""
        now = self._now_ms()
        stale = sa.or_(
            sa.and_(
                ~t.key.startswith("known:"),
                t.last_ms < now - int(self.forget_s * 1000),
                t.blocked_until_ms < now,
            ),
            sa.and_(t.key.startswith("known:"), t.last_ms < now - int(self.known_for_s * 1000)),
        )
        return connection.execute(token_throttle.delete().where(stale)).rowcount or 0

    def _current(self, count: _Count, now: int) -> _Count:
        if now - count.last_ms > self.forget_s * 1000 and now >= count.blocked_until_ms:
            return _Count(count.key, 0, now, 0)
        return count

    def _fail(self, count: _Count, free: int, now: int) -> None:
        count.failures += 1
        count.last_ms = now
        over = count.failures - free
        if over > 0:
            delay_s = min(self.max_delay_s, self.base_delay_s * 2 ** min(over - 1, 32))
            count.blocked_until_ms = now + int(delay_s * 1000)


def _keys(client_id: str, address: str) -> tuple[str, str, str]:
    return f"client:{client_id}", f"address:{address}", f"known:{client_id} {address}"


def _read(connection: sa.Connection, keys: list[str]) -> dict[str, _Count]:
    # FOR UPDATE on PostgreSQL: a concurrent request for the same keys waits for this one's count.
    # SQLite's writer holds the database's write lock already.
    rows = connection.execute(
        sa.select(t.key, t.failures, t.last_ms, t.blocked_until_ms).where(t.key.in_(keys)).with_for_update()
    ).all()
    return {r.key: _Count(r.key, r.failures, r.last_ms, r.blocked_until_ms) for r in rows}


def _write(connection: sa.Connection, counts: list[_Count]) -> None:
    rows = [
        {"key": c.key, "failures": c.failures, "last_ms": c.last_ms, "blocked_until_ms": c.blocked_until_ms}
        for c in counts
    ]
    upsert(connection, token_throttle, rows, ["failures", "last_ms", "blocked_until_ms"])
