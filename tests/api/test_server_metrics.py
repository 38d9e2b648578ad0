"""GET /metrics: the server's own metrics, read back with prometheus-client's own parser after real
requests; who may read them (``server_metrics``); bounded labels; counts from sync worker processes
and from several server processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_sync import obs
from tests.auth.helpers import bearer, create_key, grant, token
from tests.prometheus_scraper import query, scraping
from tests.server import assert_error, running_server
from workplane.api.deps import Services
from workplane.api.exposition import is_loopback
from workplane.app import build_services, create_app
from workplane.auth.credentials import ADMIN_CLIENT_ID
from workplane.auth.throttle import TokenThrottle
from workplane.server_metrics import UNMATCHED, ServerMetrics, text_format
from workplane.settings import Settings
from workplane.store.database import Database

LOOPBACK = ("127.0.0.1", 40000)
ELSEWHERE = ("203.0.113.7", 40000)  # a documentation address: never this machine


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of the exposition, by name and labels (prometheus-client's own parser)."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: TestClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


@contextmanager
def app_client(
    services: Services, client: tuple[str, int] = LOOPBACK, **changes: object
) -> Iterator[TestClient]:
    settings = services.settings.model_copy(update=changes)
    app = create_app(settings, build_services(settings, services.db) if changes else services)
    with TestClient(app, client=client, raise_server_exceptions=False) as test_client:
        yield test_client


def admin_token(client: TestClient, secret: str) -> str:
    answer = client.post(
        "/api/v1/token",
        json={"grantType": "client_credentials", "clientId": ADMIN_CLIENT_ID, "clientSecret": secret},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["accessToken"])


def test_requests_are_counted_by_route_template_and_status(services: Services, admin_secret: str) -> None:
    with app_client(services) as client:
        headers = bearer(admin_token(client, admin_secret))
        before = scrape(client)
        for _ in range(3):
            assert client.get("/api/v1/workloads", headers=headers).status_code == 200
        for n in range(2):
            missing = f"/api/v1/workloads/00000000-0000-4000-8000-00000000000{n}"
            assert client.get(missing, headers=headers).status_code == 404
        # Paths no route matches fold into one label, whatever they are.
        for path in ("/api/v1/nothing/here", "/x/1", "/x/2", "/wp-admin.php"):
            assert client.get(path).status_code == 404
        assert client.get("/api/v1/workloads").status_code == 401  # no token
        after = scrape(client)

    def grew(**labels: str) -> float:
        name = "workplane_http_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew(method="GET", route="/api/v1/workloads", status="200") == 3
    assert grew(method="GET", route="/api/v1/workloads", status="401") == 1
    assert grew(method="GET", route="/api/v1/workloads/{workloadId}", status="404") == 2
    assert grew(method="GET", route="unmatched", status="404") == 4
    histogram = "workplane_http_request_duration_seconds_count"
    count = value(after, histogram, method="GET", route="/api/v1/workloads")
    assert count - value(before, histogram, method="GET", route="/api/v1/workloads") == 4
    # Bounded labels: no raw path, no id became a label value.
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any(r and ("0000" in r or r.startswith("/x") or "wp-admin" in r) for r in routes)
    assert value(after, "workplane_bearer_token_refusals_total", reason="missing") >= 1
    assert value(after, "workplane_token_requests_total", outcome="issued") == 1
    build = [labels for name, labels in after if name == "workplane_build_info"]
    assert len(build) == 1
    assert value(after, "workplane_db_pool_size") == services.settings.db_pool_size


def test_token_failures_and_throttling_are_counted(services: Services, admin_secret: str) -> None:
    services.throttle = TokenThrottle(clock=lambda: 1_700_000_000.0)  # no wait ends while the test runs
    with app_client(services) as client:
        for _ in range(6):  # the first five failures are free, the sixth closes the door
            wrong = client.post(
                "/api/v1/token",
                json={"grantType": "client_credentials", "clientId": ADMIN_CLIENT_ID, "clientSecret": "no"},
            )
            assert wrong.status_code == 401
        throttled = client.post(
            "/api/v1/token",
            json={"grantType": "client_credentials", "clientId": ADMIN_CLIENT_ID, "clientSecret": "no"},
        )
        assert throttled.status_code == 429
        assert client.get("/api/v1/workloads", headers={"Authorization": "Basic abc"}).status_code == 401
        assert client.get("/api/v1/workloads", headers=bearer("not.a.token")).status_code == 401
        found = scrape(client)
    assert value(found, "workplane_token_requests_total", outcome="invalid_credentials") == 6
    assert value(found, "workplane_token_requests_total", outcome="throttled") == 1
    assert value(found, "workplane_token_requests_total", outcome="issued") == 0
    assert value(found, "workplane_bearer_token_refusals_total", reason="malformed") == 1
    assert value(found, "workplane_bearer_token_refusals_total", reason="invalid") == 1


def _sync_and_scrape(client: TestClient) -> tuple[Samples, Samples]:
    before = scrape(client)
    start = 1_700_000_000_000
    body = {
        "workloads": [obs(1, 1), obs(2, 1)],
        "samples": [
            {
                "workloadId": obs(1, 1)["id"],
                "metric": "GPU_UTILIZATION",
                "timestamps": [start + 15_000 * i for i in range(10)],
                "values": [float(i) for i in range(10)],
            }
        ],
    }
    cluster = "aaaaaaaa-0000-4000-8000-000000000001"
    assert client.post(f"/api/v1/clusters/{cluster}/sync", json=body).status_code == 200
    stale = {"workloads": [obs(1, 1)]}  # the same revision again: ignored
    assert client.post(f"/api/v1/clusters/{cluster}/sync", json=stale).status_code == 200
    bad = client.post(f"/api/v1/clusters/{cluster}/sync", json={"workloads": [{"id": "nope"}]})
    assert bad.status_code == 400
    return before, scrape(client)


@pytest.mark.parametrize("processes", [0, 2], ids=["in-process", "worker-processes"])
def test_sync_batches_are_counted_wherever_they_are_applied(
    services: Services, admin_secret: str, processes: int
) -> None:
    """With worker processes the batch is applied elsewhere; its counts still reach the exposition."""
    with app_client(services, sync_processes=processes) as client:
        client.headers["Authorization"] = f"Bearer {admin_token(client, admin_secret)}"
        before, after = _sync_and_scrape(client)
        assert client.app.state.services.workers.started == (processes > 0)  # type: ignore[attr-defined]

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("workplane_sync_batches_total", outcome="applied") == 2
    assert grew("workplane_sync_batches_total", outcome="invalid") == 1
    assert grew("workplane_sync_observations_total", result="applied") == 2
    assert grew("workplane_sync_observations_total", result="ignored") == 1
    assert grew("workplane_metric_samples_stored_total") == 10
    assert grew("workplane_sync_batch_apply_duration_seconds_count") == 2
    assert grew("workplane_sync_batch_apply_duration_seconds_sum") > 0


def test_loopback_only_by_default(services: Services, admin_secret: str) -> None:
    with app_client(services, ELSEWHERE) as client:
        # Not even an administrator's token opens it: the setting says this machine only.
        headers = bearer(admin_token(client, admin_secret))
        assert_error(client.get("/metrics", headers=headers), 403, "server_metrics = loopback")


def test_token_mode_needs_an_administrator_from_elsewhere(services: Services, admin_secret: str) -> None:
    with app_client(services, ELSEWHERE, server_metrics="token") as client:
        assert_error(client.get("/metrics"), 401, "missing bearer token")
        admin = bearer(admin_token(client, admin_secret))
        client.headers.update(admin)
        viewer = create_key(client, "viewer")
        grant(client, viewer.client_id, "department-viewer", "department", "10")
        assert_error(client.get("/metrics", headers=bearer(token(client, viewer))), 403, "access:admin")
        answer = client.get("/metrics", headers=admin)
        assert answer.status_code == 200
        assert value(
            parse(answer.text), "workplane_http_requests_total", method="GET", route="/metrics", status="403"
        )
    with app_client(services, LOOPBACK, server_metrics="token") as local:
        assert local.get("/metrics").status_code == 200  # this machine needs no token


def test_off_serves_nothing_and_counts_nothing(services: Services) -> None:
    with app_client(services, server_metrics="off") as client:
        assert_error(client.get("/metrics"), 404, "server_metrics = off")
        assert client.get("/api/v1/health").status_code == 200
        metrics = client.app.state.services.metrics  # type: ignore[attr-defined]
        assert not metrics._request_children


def test_openmetrics_for_a_scraper_that_asks(services: Services) -> None:
    with app_client(services) as client:
        answer = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert answer.headers["content-type"].startswith("application/openmetrics-text")
        assert answer.text.endswith("# EOF\n")


@pytest.mark.server
def test_several_server_processes_are_summed(tmp_path: Path, settings: Settings, database: Database) -> None:
    """``serve --workers 2``: each process counts its own requests, a scrape (answered by either)
    gives the sum over both."""
    env = {"WORKPLANE_WORKERS": "2", "WORKPLANE_PIN_CPUS": "false", "WORKPLANE_SYNC_PROCESSES": "0"}
    with running_server(tmp_path / "server", settings.sqlalchemy_url, env=env) as server:
        sent = 40
        # A connection each (none kept alive): the kernel spreads them over the processes. One client:
        # ``httpx.get`` would load the CA bundle for every request (about 38 ms of CPU each).
        with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            for _ in range(sent):
                assert http.get(server.url("/api/v1/health")).status_code == 200
            for _ in range(4):
                answer = http.get(server.url("/metrics"))
                assert answer.status_code == 200
                found = parse(answer.text)
                counted = value(
                    found, "workplane_http_requests_total", method="GET", route="/api/v1/health", status="200"
                )
                assert counted >= sent  # the start-up probes are health requests too
                assert value(found, "workplane_db_pool_size") == 2 * settings.db_pool_size


def test_the_text_format_is_the_librarys_own() -> None:
    """``text_format`` writes what prometheus-client's ``generate_latest`` writes, byte for byte, odd
    label values included (it only skips the library's per-line checks of label names)."""
    metrics = ServerMetrics()
    for route in ("/api/v1/workloads", 'odd "quoted" \\ back\nslash', UNMATCHED):
        for status in (200, 404):
            metrics.observe_request("GET", route, status, 0.003)
            for invented in ("BREW", "SPAM"):  # methods of their own: "other", one series
                metrics.observe_request(invented, route, status, 7.0)
    metrics.observe_batch({"applied": 3, "ignored": 1, "samples": 40, "pods": 2}, 0.2)
    metrics.token_requests.labels("throttled").inc()
    assert text_format(metrics.registry) == generate_latest(metrics.registry)
    parsed = parse(text_format(metrics.registry).decode())
    labels = {"method": "other", "route": 'odd "quoted" \\ back\nslash', "status": "404"}
    assert value(parsed, "workplane_http_requests_total", **labels) == 2
    assert {method for method, _, _ in metrics._request_children} == {"GET", "other"}


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # an IPv4 client of a dual-stack socket
        ("::ffff:203.0.113.7", False),
        ("203.0.113.7", False),
        ("10.0.0.1", False),
        ("testclient", False),
        ("unknown", False),
    ],
)
def test_what_counts_as_this_machine(address: str, local: bool) -> None:
    assert is_loopback(address) is local


@pytest.mark.server
def test_a_real_prometheus_scrapes_the_server(tmp_path: Path, settings: Settings, database: Database) -> None:
    """Prometheus asks for OpenMetrics first: its scrape of a running server succeeds and the series
    are there to query."""
    with running_server(tmp_path / "server", settings.sqlalchemy_url) as server:
        target = server.base_url.removeprefix("http://")
        with scraping(tmp_path / "prometheus", target, job="workplane") as prometheus:
            deadline = time.monotonic() + 30
            found: list[dict[str, Any]] = []
            while not found and time.monotonic() < deadline:
                found = query(prometheus, 'workplane_http_requests_total{route="/metrics",status="200"}')
                time.sleep(0.2)
            assert found, "Prometheus never stored a successful scrape's count"
            (up,) = query(prometheus, 'up{job="workplane"}')
            assert up["value"][1] == "1"
            assert query(prometheus, "workplane_build_info")[0]["metric"]["version"]
