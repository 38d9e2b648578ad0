"""The Prometheus back end against a real Prometheus holding a backfilled week of exporter series.

Every expected value is worked out here from the generated series (``tests.prometheus_server.Fleet``),
not by the code under test: means over each point's window ``(t - step, t]`` with
``t_i = start + floor(i * (end - start) / (N - 1))``. The differential tests push the same series into
the embedded store (what an agent would have sent) and ask both back ends the same requests.
"""

from __future__ import annotations

import bisect
import itertools
import math
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.api.test_pods import pid, pod
from tests.api.test_sync import obs, sync, wid
from tests.conftest import admin_client
from tests.prometheus_server import HOUR_MS, Fleet, Pod, PrometheusServer, missing
from tests.server import assert_error
from workplane.api.deps import Services
from workplane.app import build_services
from workplane.domain.timefmt import format_ms, parse_to_ms
from workplane.services.prometheus_idle import refresh_idle_from_prometheus
from workplane.settings import Settings
from workplane.store.database import Database

T0 = parse_to_ms("2026-11-02T00:00:00Z")
WEEK = 7 * 24 * HOUR_MS
MINUTE = 60_000
NAMESPACE = "runai-team-a"  # the namespace workplane serves for project team-a
TRAIN = Fleet(
    NAMESPACE,
    [Pod(0, "job-1-pod-1", gpus=2), Pod(1, "job-1-pod-2", gpus=1, exported=True)],
    T0,
    WEEK // 15_000,
    strangers=[(NAMESPACE, "job-9-pod-1"), ("elsewhere", "job-1-pod-1")],
)
SERVE = Fleet(NAMESPACE, [Pod(2, "job-2-pod-3", inference=True)], T0, WEEK // 15_000)
# GPUs at 0 % for the last 6 minutes of the week (more than the idle rule's 5), from a busy start.
IDLE = Fleet(NAMESPACE, [Pod(3, "job-3-pod-4", gpus=2, idle_after=WEEK // 15_000 - 24)], T0, WEEK // 15_000)
GAUGES = ("GPU_UTILIZATION", "GPU_MEMORY_USAGE_BYTES", "NVLINK_BANDWIDTH_TOTAL", "CPU_MEMORY_USAGE_BYTES")

pytestmark = pytest.mark.skipif(
    bool(missing()),
    reason=f"Prometheus is not installed ({', '.join(missing())}): run scripts/install-prometheus",
)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    # The week in one or two blocks, not seven: the backfill is most of this module's time.
    server = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"), [TRAIN, SERVE, IDLE], max_block_hours=168
    )
    server.backfill()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, backend_url: str, prometheus: PrometheusServer) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=backend_url,
        migrate_on_start=False,
        retention_interval_s=0,
        sync_processes=0,
        metrics_backend="prometheus",
        prometheus_url=prometheus.url,
        prometheus_timeout_s=2,
    )


def _load(client: TestClient, *, samples: bool = False) -> None:
    """Workload 1 (Training: pods 1 and 2) and workload 2 (Inference: pod 3), as their agent reports
    them; with ``samples``, also the workload-level series an agent would push to the embedded store."""
    observed = format_ms(T0)
    body: dict[str, Any] = {
        "workloads": [
            obs(1, 1, allocatedResources={"gpu": 3}, observedAt=observed),
            obs(2, 1, type="Inference", observedAt=observed),
        ],
        "pods": [
            pod(1, 1, 1, name="job-1-pod-1"),
            pod(2, 1, 1, name="job-1-pod-2"),
            pod(3, 2, 1, name="job-2-pod-3"),
        ],
    }
    sync(client, body)
    if not samples:
        return
    for number, fleet, metrics in (
        (1, TRAIN, (*GAUGES, "CPU_USAGE_CORES")),
        (2, SERVE, ("NIM_NUM_REQUESTS_RUNNING", "NIM_TIME_TO_FIRST_TOKEN_SECONDS")),
    ):
        for metric in metrics:
            times, values = fleet.workload_series(metric)
            series = {"workloadId": wid(number), "metric": metric, "timestamps": times, "values": values}
            sync(client, {"samples": [series]})


def _bounds(start: int, end: int, count: int) -> list[int]:
    """The rule's window bounds: point i-1 covers (bounds[i-1], bounds[i]]."""
    if count == 1:
        return [start, end]
    d = count - 1
    return [start + (i * (end - start)) // d for i in range(-1, count)]


def _means(times: list[int], values: list[float], bounds: list[int]) -> list[tuple[int, float]]:
    """The mean of the samples in each window ``(lo, hi]`` of ``bounds``; ``times`` ascend (the
    fleet's sample instants), so each window's samples are found by bisection."""
    assert len(times) == len(values)
    points = []
    for lo, hi in itertools.pairwise(bounds):
        inside = values[bisect.bisect_right(times, lo) : bisect.bisect_right(times, hi)]
        if inside:
            points.append((hi, math.fsum(inside) / len(inside)))
    return points


def _fetch(
    client: TestClient, workload: int, types: str, start: int, end: int, count: int, path: str = ""
) -> tuple[int, dict[str, list[tuple[int, float]]]]:
    answer = client.get(
        f"/api/v1/workloads/{wid(workload)}{path}/metrics",
        params={
            "metricType": types,
            "start": format_ms(start),
            "end": format_ms(end),
            "numberOfSamples": count,
        },
    )
    assert answer.status_code in (200, 207), answer.text
    return answer.status_code, {
        m["type"]: [(parse_to_ms(v["timestamp"]), float(v["value"])) for v in m["values"]]
        for m in answer.json()["measurements"]
    }


def _close(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [t for t, _ in got] == [t for t, _ in expected]
    for (t, value), (_, wanted) in zip(got, expected, strict=True):
        assert math.isclose(value, wanted, rel_tol=1e-9, abs_tol=1e-9), (format_ms(t), value, wanted)


def _rate_between_first_and_last(fleet: Fleet, increments: list[float], lo: int, hi: int) -> float | None:
    """What Prometheus' increase()/rate() see of a window: the samples from its first to its last."""
    times = fleet.times()
    inside = range(bisect.bisect_right(times, lo), bisect.bisect_right(times, hi))
    if len(inside) < 2:
        return None
    return math.fsum(increments[k] for k in inside[1:])


def test_every_type_against_values_worked_out_by_hand(client: TestClient) -> None:
    _load(client)
    # Hourly points over a day: every window (t - 1h, t] holds 240 samples of each series, and the
    # CPU counters' rate is constant within each hour.
    start, end, count = T0 + 2 * HOUR_MS, T0 + 26 * HOUR_MS, 25
    types = ",".join((*GAUGES, "CPU_USAGE_CORES", "GPU_ALLOCATION", "NIM_NUM_REQUESTS_RUNNING"))
    status, got = _fetch(client, 1, types, start, end, count)
    assert status == 207  # NIM series are not served for a training workload
    assert list(got) == [*GAUGES, "CPU_USAGE_CORES", "GPU_ALLOCATION"]
    bounds = _bounds(start, end, count)
    times = list(TRAIN.times())
    k_all = range(TRAIN.samples)
    gpus = [(0, 0), (0, 1), (1, 0)]
    by_hand = {
        # The mean over the three GPUs (pod 2's are labelled exported_pod), stranger pods left out.
        "GPU_UTILIZATION": [sum(Fleet.utilisation(p, g, k) for p, g in gpus) / 3 for k in k_all],
        "GPU_MEMORY_USAGE_BYTES": [
            sum(Fleet.frame_buffer_mib(p, g, k) for p, g in gpus) * 2**20 for k in k_all
        ],
        "NVLINK_BANDWIDTH_TOTAL": [
            sum(Fleet.nvlink(p, g, k, d) for p, g in gpus for d in (0, 1)) for k in k_all
        ],
        # Only the containers: the pod-level (container="") series would double it.
        "CPU_MEMORY_USAGE_BYTES": [Fleet.working_set(0, k) + Fleet.working_set(1, k) for k in k_all],
    }
    for metric, values in by_hand.items():
        _close(got[metric], _means(times, [float(v) for v in values], bounds))
    # CPU: pod 0 uses 0.25 * (1 + hour % 4) cores, pod 1 one step more.
    cores = [
        (t, 0.25 * (1 + ((t - 1) // HOUR_MS) % 4) + 0.25 * (1 + ((t - 1) // HOUR_MS + 1) % 4))
        for t in bounds[1:]
    ]
    _close(got["CPU_USAGE_CORES"], cores)
    assert {value for _, value in got["GPU_ALLOCATION"]} == {3.0}  # from the store's history


def test_inference_series_and_histogram_means(client: TestClient) -> None:
    _load(client)
    start, end, count = T0 + HOUR_MS, T0 + 5 * HOUR_MS, 5
    status, got = _fetch(
        client, 2, "NIM_NUM_REQUESTS_RUNNING,NIM_TIME_TO_FIRST_TOKEN_SECONDS", start, end, count
    )
    assert status == 200
    bounds = _bounds(start, end, count)
    running = [float(Fleet.requests_running(2, k)) for k in range(SERVE.samples)]
    _close(got["NIM_NUM_REQUESTS_RUNNING"], _means(list(SERVE.times()), running, bounds))
    # The mean time to first token of the requests finished between the window's first and last sample.
    seconds = [0.0] + [Fleet.ttft_increase(2, k)[0] for k in range(1, SERVE.samples)]
    expected = []
    for lo, hi in itertools.pairwise(bounds):
        total = _rate_between_first_and_last(SERVE, seconds, lo, hi)
        requests = _rate_between_first_and_last(SERVE, [0.0] + [4.0] * (SERVE.samples - 1), lo, hi)
        assert total is not None
        assert requests
        expected.append((hi, total / requests))
    _close(got["NIM_TIME_TO_FIRST_TOKEN_SECONDS"], expected)


def test_raw_samples_boundaries_included(client: TestClient) -> None:
    _load(client)
    start, end = T0 + HOUR_MS, T0 + HOUR_MS + 2 * MINUTE  # both ends are sample instants
    _, got = _fetch(client, 1, "GPU_UTILIZATION,CPU_USAGE_CORES", start, end, 0)
    for metric in ("GPU_UTILIZATION", "CPU_USAGE_CORES"):
        times, values = TRAIN.workload_series(metric)
        expected = [(t, v) for t, v in zip(times, values, strict=True) if start <= t <= end]
        assert len(expected) == 9
        _close(got[metric], expected)


def test_steps_that_are_not_whole_milliseconds(client: TestClient) -> None:
    """A week at 1,000 points: 604,800,000 ms / 999 is not whole, so Prometheus evaluates point i
    at ``start + i * 605405`` ms (up to 404 ms before the rule's ``t_i``); each point keeps the rule's
    timestamp and is the mean over ``(e_i - 605405, e_i]``."""
    _load(client)
    start, end, count = T0, T0 + WEEK, 1000
    _, got = _fetch(client, 1, "GPU_UTILIZATION", start, end, count)
    step = (end - start) // (count - 1)
    evaluated = [start + i * step for i in range(count)]
    times, values = TRAIN.workload_series("GPU_UTILIZATION")
    rule_times = _bounds(start, end, count)[1:]
    expected = []
    for i, e in enumerate(evaluated):
        means = _means(times, values, [e - step, e])
        if means:
            expected.append((rule_times[i], means[0][1]))
    assert len(expected) == count
    _close(got["GPU_UTILIZATION"], expected)


def _embedded(settings: Settings, database: Database) -> Services:
    return build_services(settings.model_copy(update={"metrics_backend": "embedded"}), database)


@pytest.mark.parametrize(
    ("start", "end", "count", "types"),
    [
        (T0 + 2 * HOUR_MS, T0 + 2 * HOUR_MS + 999 * 10 * MINUTE, 1000, GAUGES),  # 6.9 days, 10-minute steps
        (T0 + 3 * HOUR_MS, T0 + 9 * HOUR_MS, 25, (*GAUGES, "CPU_USAGE_CORES")),  # quarter hours
        (T0 + 24 * HOUR_MS, T0 + 48 * HOUR_MS, 1, GAUGES),  # one point: (start, end]
        (T0 + 5 * HOUR_MS, T0 + 5 * HOUR_MS + 10 * MINUTE, 0, (*GAUGES, "CPU_USAGE_CORES")),  # raw
        (T0 + 5 * HOUR_MS, T0 + 5 * HOUR_MS + 4 * MINUTE, 17, GAUGES),  # 15 s steps: a sample a point
        (T0 - HOUR_MS, T0 + HOUR_MS, 9, (*GAUGES, "CPU_USAGE_CORES")),  # before the data: left out
        (T0 + WEEK - HOUR_MS, T0 + WEEK + HOUR_MS, 9, GAUGES),  # past its end
    ],
)
def test_same_answers_as_the_embedded_store(
    client: TestClient,
    settings: Settings,
    database: Database,
    start: int,
    end: int,
    count: int,
    types: tuple[str, ...],
) -> None:
    _load(client, samples=True)
    with admin_client(settings, _embedded(settings, database)) as embedded:
        for workload, metrics in ((1, types), (2, ("NIM_NUM_REQUESTS_RUNNING",))):
            _, from_store = _fetch(embedded, workload, ",".join(metrics), start, end, count)
            _, from_prometheus = _fetch(client, workload, ",".join(metrics), start, end, count)
            assert list(from_prometheus) == list(from_store)
            for metric in metrics:
                _close(from_prometheus[metric], from_store[metric])
                if start >= T0 and count:
                    assert from_store[metric], metric  # the comparison is not of two empty lists


def test_pod_metrics(client: TestClient, settings: Settings, database: Database) -> None:
    _load(client)
    start, end, count = T0 + HOUR_MS, T0 + 3 * HOUR_MS, 3
    types = "GPU_UTILIZATION,CPU_MEMORY_USAGE_BYTES,GPU_UTILIZATION_PER_GPU"
    status, got = _fetch(client, 1, types, start, end, count, path=f"/pods/{pid(2)}")
    assert status == 207  # per-GPU series are not served
    assert list(got) == ["GPU_UTILIZATION", "CPU_MEMORY_USAGE_BYTES"]
    bounds, times = _bounds(start, end, count), list(TRAIN.times())
    utilisation = [float(Fleet.utilisation(1, 0, k)) for k in range(TRAIN.samples)]  # exported_pod labels
    _close(got["GPU_UTILIZATION"], _means(times, utilisation, bounds))
    memory = [float(Fleet.working_set(1, k)) for k in range(TRAIN.samples)]
    _close(got["CPU_MEMORY_USAGE_BYTES"], _means(times, memory, bounds))
    # A pod of another workload is not found here; the embedded store has no per-pod series.
    answer = client.get(
        f"/api/v1/workloads/{wid(1)}/pods/{pid(3)}/metrics",
        params={"metricType": "GPU_UTILIZATION", "start": format_ms(start), "end": format_ms(end)},
    )
    assert_error(answer, 404, pid(3))
    with admin_client(settings, _embedded(settings, database)) as embedded:
        status, got = _fetch(embedded, 1, "GPU_UTILIZATION", start, end, count, path=f"/pods/{pid(2)}")
        assert (status, got) == (207, {})


def test_prometheus_down_then_back(client: TestClient, prometheus: PrometheusServer) -> None:
    _load(client)
    start, end = T0 + HOUR_MS, T0 + 2 * HOUR_MS
    assert _fetch(client, 1, "GPU_UTILIZATION", start, end, 5)[1]["GPU_UTILIZATION"]
    prometheus.stop()
    try:
        began = time.monotonic()
        answer = client.get(
            f"/api/v1/workloads/{wid(1)}/metrics",
            params={
                "metricType": "GPU_UTILIZATION,GPU_ALLOCATION",
                "start": format_ms(start),
                "end": format_ms(end),
            },
        )
        assert time.monotonic() - began < 10
        assert_error(answer, 503, "metrics source")
        assert int(answer.headers["Retry-After"]) > 0
        # The server stays up: other routes answer meanwhile.
        assert client.get(f"/api/v1/workloads/{wid(1)}").status_code == 200
    finally:
        prometheus.start()
    assert _fetch(client, 1, "GPU_UTILIZATION", start, end, 5)[1]["GPU_UTILIZATION"]


def test_a_prometheus_that_never_answers_gives_503_within_the_timeout(
    settings: Settings, database: Database, services: Services
) -> None:
    """A listener that accepts connections and never answers: the request must not hang."""
    assert services.prometheus is not None  # the store is prepared (seeded) by this fixture
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        stop = threading.Event()
        held: list[socket.socket] = []

        def accept() -> None:
            silent.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(silent.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        port = silent.getsockname()[1]
        slow = settings.model_copy(
            update={"prometheus_url": f"http://127.0.0.1:{port}", "prometheus_timeout_s": 1.0}
        )
        try:
            with admin_client(slow, build_services(slow, database)) as client:
                _load(client)
                began = time.monotonic()
                answer = client.get(
                    f"/api/v1/workloads/{wid(1)}/metrics",
                    params={
                        "metricType": "GPU_UTILIZATION",
                        "start": format_ms(T0),
                        "end": format_ms(T0 + HOUR_MS),
                    },
                )
                assert time.monotonic() - began < 5
                assert_error(answer, 503, "metrics source")
                assert "Retry-After" in answer.headers
        finally:
            stop.set()
            thread.join(timeout=5)
            for connection in held:
                connection.close()


def test_idle_gpus_follow_prometheus_utilisation(client: TestClient, services: Services) -> None:
    _load(client)
    observed = format_ms(T0)
    sync(
        client,
        {
            "workloads": [obs(3, 1, allocatedResources={"gpu": 2}, observedAt=observed)],
            "pods": [pod(4, 3, 1, name="job-3-pod-4")],
        },
    )
    assert services.prometheus is not None
    last = T0 + WEEK - 15_000  # the last sample
    # At the week's end: workload 3's GPUs have reported only 0 for 6 minutes, workload 1's are busy.
    assert refresh_idle_from_prometheus(services.db, services.prometheus, last) == 2
    idle = {n: client.get(f"/api/v1/workloads/{wid(n)}").json() for n in (1, 3)}
    assert (idle[3]["idleGpus"], idle[3]["idleAllocatedGpus"]) == (2, 2.0)
    assert (idle[1]["idleGpus"], idle[1]["idleAllocatedGpus"]) == (0, 0.0)
    listed = client.get("/api/v1/workloads", params={"filterBy": "idleGpus>=1"}).json()["workloads"]
    assert [w["id"] for w in listed] == [wid(3)]
    # Five minutes into the zeros is not more than five minutes: not idle yet.
    assert refresh_idle_from_prometheus(services.db, services.prometheus, last - 60_000) == 1
    assert client.get(f"/api/v1/workloads/{wid(3)}").json()["idleGpus"] == 0


# bcrypt of "workplane-test-password" (4 rounds: the test's cost is the hash check per request).
PASSWORD_HASH = "$2b$04$pwEK9wH16HI4dBNuPjOHoe33OBnFkIhCSqaTFkjwINil/1AM9fbDm"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a certificate")
def test_basic_auth_over_tls(
    tmp_path: Path, settings: Settings, database: Database, services: Services
) -> None:
    """A Prometheus that wants https and a password: answered with the CA file and the credentials,
    503 without them."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  reader: '{PASSWORD_HASH}'\n"
    )
    ready = {
        "verify": ssl.create_default_context(cafile=str(cert)),
        "auth": ("reader", "workplane-test-password"),
    }
    server = PrometheusServer(tmp_path / "prometheus", [], web_config=web, ready_check=ready).start()
    try:
        secured = settings.model_copy(
            update={
                "prometheus_url": server.url,
                "prometheus_username": "reader",
                "prometheus_password": SecretStr("workplane-test-password"),
                "prometheus_ca_file": cert,
            }
        )
        window = {"metricType": "GPU_UTILIZATION", "start": format_ms(T0), "end": format_ms(T0 + HOUR_MS)}
        with admin_client(secured, build_services(secured, database)) as client:
            _load(client)
            answer = client.get(f"/api/v1/workloads/{wid(1)}/metrics", params=window)
            assert answer.status_code == 200, answer.text  # an empty Prometheus: no values
            assert answer.json()["measurements"][0]["values"] == []
        wrong = secured.model_copy(update={"prometheus_password": SecretStr("wrong")})
        untrusted = secured.model_copy(update={"prometheus_ca_file": None})
        for refused in (wrong, untrusted):
            with admin_client(refused, build_services(refused, database)) as client:
                answer = client.get(f"/api/v1/workloads/{wid(1)}/metrics", params=window)
                assert_error(answer, 503, "metrics source")
    finally:
        server.stop()


def test_csv_form(client: TestClient) -> None:
    _load(client)
    start, end = T0 + HOUR_MS, T0 + 2 * HOUR_MS
    params = {"metricType": "GPU_UTILIZATION,GPU_ALLOCATION", "numberOfSamples": "2"}
    answer = client.get(
        f"/api/v1/workloads/{wid(1)}/metrics",
        params={**params, "start": format_ms(start), "end": format_ms(end)},
        headers={"Accept": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.text.endswith("\r\n")
    rows = [row.split(",") for row in answer.text.split("\r\n")[:-1]]
    assert rows[0] == ["type", "timestamp", "value"]
    assert [row[:2] for row in rows[1:]] == [
        ["GPU_UTILIZATION", format_ms(start)],
        ["GPU_UTILIZATION", format_ms(end)],
        ["GPU_ALLOCATION", format_ms(start)],
        ["GPU_ALLOCATION", format_ms(end)],
    ]
    times, values = TRAIN.workload_series("GPU_UTILIZATION")
    expected = _means(times, values, _bounds(start, end, 2))
    _close([(parse_to_ms(t), float(v)) for _, t, v in rows[1:3]], expected)
    assert [row[2] for row in rows[3:]] == ["3", "3"]
