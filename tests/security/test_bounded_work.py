"""One reader cannot ask for unbounded work: filter terms and search words are capped (a 400 that says
the limit, on both databases), every read stops at ``query_timeout_ms``, and a read whose client has
gone is cancelled at once instead of holding a database core until it ends."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc
from fastapi.testclient import TestClient

from tests.server import assert_error
from workplane.api.deps import Services
from workplane.api.edge import CancelOnDisconnect
from workplane.api.gate import EXPENSIVE_AT
from workplane.domain.scopes import ScopeSet
from workplane.query.filters import MAX_SEARCH_WORDS, MAX_TERMS, WorkloadQuery
from workplane.settings import Settings
from workplane.store.database import (
    CURRENT_CANCEL,
    Database,
    QueryCancel,
    create_database,
    is_cancelled_query,
)

# A statement that runs for many seconds on either database unless something stops it.
_SLOW = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000000) "
    "SELECT count(*) FROM n",
    "postgresql": "SELECT pg_sleep(30)",
}


@pytest.fixture
def impatient(settings: Settings) -> Iterator[Database]:
    db = create_database(settings.model_copy(update={"query_timeout_ms": 300}))
    yield db
    db.dispose()


def _run_slow(db: Database) -> float:
    started = time.monotonic()
    with pytest.raises(sqlalchemy.exc.OperationalError) as caught, db.read() as conn:
        conn.exec_driver_sql(_SLOW[db.dialect]).all()
    assert is_cancelled_query(caught.value), caught.value
    return time.monotonic() - started


def test_a_read_stops_at_the_query_timeout(impatient: Database) -> None:
    assert _run_slow(impatient) < 5
    with impatient.read() as conn:  # the connection is usable again, and fast reads are untouched
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


def test_a_cancelled_read_stops_at_once(settings: Settings) -> None:
    db = create_database(settings.model_copy(update={"query_timeout_ms": 600_000}))
    cancel = QueryCancel()
    token = CURRENT_CANCEL.set(cancel)
    timer = threading.Timer(0.3, cancel.cancel)
    timer.start()
    try:
        assert _run_slow(db) < 5
    finally:
        timer.cancel()
        CURRENT_CANCEL.reset(token)
        db.dispose()


def test_a_read_cancelled_before_it_starts_does_not_run(settings: Settings) -> None:
    db = create_database(settings.model_copy(update={"query_timeout_ms": 600_000}))
    cancel = QueryCancel()
    cancel.cancel()
    token = CURRENT_CANCEL.set(cancel)
    try:
        assert _run_slow(db) < 5
    finally:
        CURRENT_CANCEL.reset(token)
        db.dispose()


def test_a_client_that_disconnects_cancels_its_query(settings: Settings) -> None:
    """The edge middleware, a real route reading through ``Database.read``, and a client that leaves
    after 0.3 s: the query ends within seconds, not at its 10-minute timeout."""
    db = create_database(settings.model_copy(update={"query_timeout_ms": 600_000}))
    outcome: dict[str, Any] = {}

    async def route(scope: Any, receive: Any, send: Any) -> None:
        def read() -> None:
            started = time.monotonic()
            try:
                with db.read() as conn:
                    conn.exec_driver_sql(_SLOW[db.dialect]).all()
            except sqlalchemy.exc.OperationalError as exc:
                outcome["cancelled"] = is_cancelled_query(exc)
            outcome["seconds"] = time.monotonic() - started

        # Starlette runs sync routes this way: in a thread, with the request's context.
        await asyncio.to_thread(read)

    async def client() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(0.3)
            return {"type": "http.disconnect"}

        async def send(_message: Any) -> None:
            raise AssertionError("no answer expected")

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await asyncio.wait_for(CancelOnDisconnect(route)(scope, receive, send), timeout=20)

    try:
        asyncio.run(client())
    finally:
        db.dispose()
    assert outcome["cancelled"] is True
    assert outcome["seconds"] < 5


@pytest.mark.parametrize("path", ["/api/v1/workloads", "/api/v1/workloads/count"])
def test_too_many_terms_are_a_400_that_says_the_limit(client: TestClient, path: str) -> None:
    ok = client.get(path, params={"filterBy": ["name=@a"] * MAX_TERMS})
    assert ok.status_code == 200, ok.text
    for terms in (MAX_TERMS + 1, 100, 1000):
        answer = client.get(path, params={"filterBy": ["name=@a"] * terms})
        assert_error(answer, 400, "filterBy", str(MAX_TERMS))
    answer = client.get(path, params={"filterBy": ",".join(["name=@a"] * 1000)})
    assert_error(answer, 400, "filterBy", str(MAX_TERMS))
    answer = client.get(path, params={"search": " ".join(["a"] * (MAX_SEARCH_WORDS + 1))})
    assert_error(answer, 400, "search", str(MAX_SEARCH_WORDS))


@pytest.mark.parametrize("path", ["/api/v1/workloads", "/api/v1/workloads/count"])
def test_expensive_reads_beyond_the_slots_are_a_429_and_cheap_ones_pass(
    client: TestClient, services: Services, path: str
) -> None:
    heavy = {"filterBy": ",".join(f"name=@{c}" for c in "abcd"), "search": "e f g h"}
    almost = {"filterBy": ",".join(f"name=@{c}" for c in "abc"), "search": "e f g h"}
    busy = WorkloadQuery(scope=ScopeSet.everything(), words=["x"] * EXPENSIVE_AT)
    with services.expensive_reads.admit(busy):  # the process's one slot is taken
        refused = client.get(path, params=heavy)
        assert_error(refused, 429, "expensive", "narrow the filter")
        assert refused.headers["Retry-After"] == "1"
        # One predicate fewer is an ordinary read, as is anything without substrings.
        assert client.get(path, params=almost).status_code == 200
        assert client.get(path, params={"filterBy": "phase==Running"}).status_code == 200
    assert client.get(path, params=heavy).status_code == 200
    assert client.get(path, params=heavy).status_code == 200  # and again: the slot was given back
