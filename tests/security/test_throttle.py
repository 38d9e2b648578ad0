"""The token throttle has no holes: forwarded addresses are believed only from trusted proxies,
concurrent guesses cannot race past the limit, a success does not clear failures others caused, and
every server process (and every app on the same store) shares the counts."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.auth.helpers import create_key
from tests.server import Server, assert_error, http_client, running_server
from workplane.api.deps import Services
from workplane.app import build_services, create_app
from workplane.auth.audit import RefusalLog, list_entries
from workplane.auth.credentials import ADMIN_CLIENT_ID
from workplane.auth.throttle import TokenThrottle
from workplane.settings import Settings
from workplane.store.database import Database
from workplane.store.schema import access_keys

TOKEN = "/api/v1/token"


def _ask(client: Any, client_id: str, secret: str, **headers: str) -> Any:
    return client.post(
        TOKEN,
        json={"grantType": "client_credentials", "clientId": client_id, "clientSecret": secret},
        headers=headers,
    )


def test_concurrent_guesses_check_no_more_secrets_than_allowed(
    server: Server, database: Database, strong_hashing: None
) -> None:
    # At full strength a check takes a fifth of a second, so the 16 guesses in flight overlap inside
    # it, where a count read before the check and written after it would let them all through.
    with database.read() as connection:
        stored = connection.execute(sa.select(access_keys.c.secret_hash)).scalar_one()
    assert stored.startswith(f"scrypt${2**14}$8$5$"), stored
    target = str(uuid.uuid4())

    def guess(_: int) -> int:
        with http_client(base_url=server.base_url, timeout=30) as http:
            return int(_ask(http, target, "wrong").status_code)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = Counter(pool.map(guess, range(40)))
    elapsed = time.monotonic() - started
    # Five free failures and the sixth that closes the door for 1 s, then 2 s, 4 s …: one more check
    # per wait that ran out while the guesses were still arriving (before the fix: 21 of 40).
    reopened = int(math.log2(elapsed + 1))
    assert statuses[401] <= 6 + reopened, (statuses, elapsed)
    assert statuses[401] + statuses[429] == 40, statuses


def test_forwarded_for_is_not_believed_from_an_untrusted_peer(server: Server) -> None:
    admin = server.client()  # its token before the guessing closes this address's door
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        # Each guess past the 20 free ones closes the address's door for 1 s, 2 s, 4 s …, counted from
        # when its check began: on a loaded machine a guess's own hashing can outlast the first waits,
        # so the guesses go on (bounded) until one is turned away, instead of expecting the 22nd to be.
        for i in range(30):
            forged = f"10.1.{i // 250}.{i % 250}"
            answers.append(_ask(http, str(uuid.uuid4()), "wrong", **{"X-Forwarded-For": forged}))
            if answers[-1].status_code == 429:
                break
    # 20 free failures per address: the forged headers did not make each guess an address of its own
    # (with 30 addresses of one failure each, none would be turned away).
    assert [a.status_code for a in answers[:20]] == [401] * 20
    assert_error(answers[-1], 429)
    with admin:
        entries = admin.get("/api/v1/audit", params={"limit": 1000}).json()["entries"]
    addresses = {e["address"] for e in entries if e["status"] == 401}
    assert addresses == {"127.0.0.1"}, addresses


def test_forwarded_for_is_believed_from_a_trusted_proxy(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    env = {"WORKPLANE_TRUSTED_PROXIES": "127.0.0.1, ::1"}
    with running_server(tmp_path / "server", settings.sqlalchemy_url, env=env) as server:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            _ask(http, "someone", "wrong", **{"X-Forwarded-For": "203.0.113.7"})
        with server.client() as admin:
            entries = admin.get("/api/v1/audit", params={"limit": 1000}).json()["entries"]
        assert {e["address"] for e in entries if e["status"] == 401} == {"203.0.113.7"}


# A clock that stands still, so that no wait runs out between two requests however slow the machine:
# the sixth failure's door is closed for 1 s, which a loaded 2-core machine can take between two
# requests in process.
FROZEN_S = 1_700_000_000.0


def test_a_valid_key_does_not_buy_guesses_at_another(
    services: Services, client: TestClient, anonymous: TestClient
) -> None:
    services.throttle = TokenThrottle(clock=lambda: FROZEN_S)
    mine = create_key(client, "mine")
    theirs = create_key(client, "theirs")
    for _ in range(5):
        assert_error(_ask(anonymous, theirs.client_id, "guess"), 401)
        assert _ask(anonymous, mine.client_id, mine.secret).status_code == 200
    # The sixth failure on their key closes its door, my successes in between notwithstanding.
    assert_error(_ask(anonymous, theirs.client_id, "guess"), 401)
    assert_error(_ask(anonymous, theirs.client_id, "guess"), 429)
    # The address's own count is not cleared by successes either: 20 failures from it, then a wait.
    for i in range(15):  # with their six: 21 failures from this address
        _ask(anonymous, f"nobody-{i}", "guess")
        assert _ask(anonymous, mine.client_id, mine.secret).status_code in (200, 429)
    assert_error(_ask(anonymous, "nobody-else", "guess"), 429)


def test_apps_on_one_store_share_the_counts(
    settings: Settings, database: Database, services: Services
) -> None:
    other = build_services(settings, database)
    services.throttle = other.throttle = TokenThrottle(clock=lambda: FROZEN_S)
    with (
        TestClient(create_app(settings, services), raise_server_exceptions=False) as first,
        TestClient(create_app(settings, other), raise_server_exceptions=False) as second,
    ):
        answers = [_ask(first if i % 2 else second, ADMIN_CLIENT_ID, "wrong") for i in range(7)]
    assert [a.status_code for a in answers] == [401] * 6 + [429]


def test_a_flush_waits_for_the_rows_another_flush_is_writing(database: Database) -> None:
    # The audit route flushes before it reads. If the periodic flusher has just taken the buffer and
    # is still writing it, the route's flush must not return (and the route read) before those rows
    # are committed: that race once hid a refusal from the answer.
    refusals = RefusalLog()
    refusals.add(actor="someone", target="/api/v1/token", status=401, address="203.0.113.7", detail="")
    first = threading.Thread(target=refusals.flush, args=(database,))
    with database.write() as blocker:  # holds the write lock (SQLite) or the table (PostgreSQL)
        if blocker.dialect.name == "postgresql":
            blocker.execute(sa.text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
        first.start()
        time.sleep(0.3)  # the first flush has taken the row and waits for the lock
        second = threading.Thread(target=refusals.flush, args=(database,))
        second.start()
        second.join(timeout=0.5)
        assert second.is_alive(), "a flush returned while another one's rows were not yet written"
    second.join(timeout=30)
    first.join(timeout=30)
    assert not second.is_alive()
    assert not first.is_alive()
    with database.read() as connection:
        assert [(r.actor, r.address) for r in list_entries(connection)] == [("someone", "203.0.113.7")]
