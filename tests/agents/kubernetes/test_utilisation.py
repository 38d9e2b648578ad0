"""GPU utilisation and memory forwarded by the Kubernetes agent (``agents.kubernetes.utilisation``).

The DCGM exporter is stood in for by a small HTTP server on 127.0.0.1 that serves the exporter's
exposition text as the exporter writes it (per-GPU series labelled with the pod that holds the GPU);
the agent reads it directly (``--dcgm-exporter-url``) or through a real Prometheus that scrapes it
(``--prometheus-url``; skipped where no ``prometheus`` binary is installed). The samples must reach
the server's embedded metrics store and come back from ``GET /workloads/{id}/metrics``.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.agents.kubernetes import manifests as m
from tests.agents.kubernetes.apiserver import FakeCluster
from tests.agents.kubernetes.conftest import Agent, wait_for, workloads
from tests.prometheus_scraper import scraping
from tests.server import free_port
from workplane.agents.kubernetes.utilisation import (
    GpuReading,
    parse_exposition,
    parse_query_answer,
    workload_samples,
)

pytestmark = pytest.mark.server

_GPU = (
    'gpu="{index}",UUID="GPU-{uuid}",pci_bus_id="00000000:00:1{index}.0",device="nvidia{index}",'
    'modelName="NVIDIA A100-SXM4-80GB",Hostname="node-1",DCGM_FI_DRIVER_VERSION="550.54.15"'
)
_HOLDER = ',container="main",namespace="{namespace}",pod="{pod}"'


def exposition(gpus: list[tuple[str | None, float, float]]) -> str:
    """The DCGM exporter's text for GPUs given as (pod holding it in team-a or None, util %, MiB used),
    with a metric the agent does not read between them."""
    families: dict[str, list[str]] = {
        "DCGM_FI_DEV_GPU_UTIL": [],
        "DCGM_FI_DEV_SM_CLOCK": [],
        "DCGM_FI_DEV_FB_USED": [],
        "DCGM_FI_DEV_FB_USED_PERCENT": [],
    }
    for index, (pod, util, used) in enumerate(gpus):
        labels = _GPU.format(index=index, uuid=f"5fd4d8b3-0000-0000-0000-00000000000{index}")
        if pod is not None:
            labels += _HOLDER.format(namespace="team-a", pod=pod)
        families["DCGM_FI_DEV_GPU_UTIL"].append(f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} {util:g}")
        families["DCGM_FI_DEV_SM_CLOCK"].append(f"DCGM_FI_DEV_SM_CLOCK{{{labels}}} 1410")
        families["DCGM_FI_DEV_FB_USED"].append(f"DCGM_FI_DEV_FB_USED{{{labels}}} {used:g}")
        # A family whose name begins with another's: not mistaken for it.
        families["DCGM_FI_DEV_FB_USED_PERCENT"].append(f"DCGM_FI_DEV_FB_USED_PERCENT{{{labels}}} 0.5")
    lines = []
    for name, samples in families.items():
        lines += [f"# HELP {name} {name} (as DCGM names it).", f"# TYPE {name} gauge", *samples]
    return "\n".join(lines) + "\n"


# Two GPUs held by the Job's pod, one free GPU (busy with something outside Kubernetes: not counted).
GPUS: list[tuple[str | None, float, float]] = [
    ("pi-x7k2p", 40, 1000),
    ("pi-x7k2p", 61, 3000),
    (None, 99, 500),
]
MEAN_UTIL = "50.5"
MEMORY_BYTES = str(4000 * 2**20)


def test_readings_from_the_exporter_text_and_their_workload_series() -> None:
    readings = parse_exposition(exposition(GPUS))
    assert {(r.pod, r.metric, r.value) for r in readings} == {
        ("pi-x7k2p", "DCGM_FI_DEV_GPU_UTIL", 40),
        ("pi-x7k2p", "DCGM_FI_DEV_GPU_UTIL", 61),
        ("pi-x7k2p", "DCGM_FI_DEV_FB_USED", 1000),
        ("pi-x7k2p", "DCGM_FI_DEV_FB_USED", 3000),
    }
    # The same GPU seen twice (two scrapes of one exporter) counts once.
    twice = [
        *readings,
        GpuReading("team-a", "pi-x7k2p", readings[0].gpu, readings[0].metric, readings[0].value),
    ]
    series = workload_samples(twice, {("team-a", "pi-x7k2p"): "w1", ("team-b", "other"): "w2"}, 1_000)
    assert series == [
        {
            "workloadId": "w1",
            "metric": "GPU_MEMORY_USAGE_BYTES",
            "timestamps": [1_000],
            "values": [4000 * 2**20],
        },
        {"workloadId": "w1", "metric": "GPU_UTILIZATION", "timestamps": [1_000], "values": [50.5]},
    ]


def test_prometheus_renamed_labels_name_the_gpu_holder() -> None:
    """Scraped without honor_labels, the exporter's pod labels become exported_*; the ``pod`` left on
    a free GPU's series is the exporter's own pod, which holds no GPU."""
    exporter = {"pod": "dcgm-exporter-x", "namespace": "gpu-operator"}
    answer = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {
                    "metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "UUID": "GPU-1", **exporter}
                    | {"exported_pod": "p", "exported_namespace": "ns"},
                    "value": [1.7e9, "42"],
                },
                {
                    "metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "UUID": "GPU-2", **exporter},
                    "value": [1.7e9, "7"],
                },
            ],
        },
    }
    readings = parse_query_answer(orjson.dumps(answer))
    assert [(r.namespace, r.pod, r.value) for r in readings] == [("ns", "p", 42.0)]


class _Exporter(http.server.ThreadingHTTPServer):
    text = ""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Exporter

    def do_GET(self) -> None:
        body = self.server.text.encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def dcgm_exporter(text: str) -> Iterator[_Exporter]:
    exporter = _Exporter(("127.0.0.1", 0), _Handler)
    exporter.text = text
    thread = threading.Thread(target=exporter.serve_forever, daemon=True)
    thread.start()
    try:
        yield exporter
    finally:
        exporter.shutdown()
        exporter.server_close()


def _measured(agent: Agent, workload_id: str) -> dict[str, set[str]] | None:
    """The workload's raw GPU samples from the metrics route, once both series have some."""
    now = datetime.now(UTC)
    params = {
        "metricType": "GPU_UTILIZATION,GPU_MEMORY_USAGE_BYTES",
        "start": (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "end": (now + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "numberOfSamples": "0",
    }
    with agent.server.client() as client:
        answer = client.get(f"/api/v1/workloads/{workload_id}/metrics", params=params)
    assert answer.status_code == 200, answer.text
    found = {m["type"]: {v["value"] for v in m["values"]} for m in answer.json()["measurements"]}
    return found if all(found.values()) and len(found) == 2 else None


def _running_gpu_job(agent: Agent, cluster: FakeCluster) -> str:
    cluster.create(m.namespace("team-a"))
    cluster.create(m.node("node-1"))
    job = cluster.create(m.job_pi("team-a"))
    cluster.create(m.running(m.pod("pi-x7k2p", job, "team-a", "perl:5.34.0", gpu=2), "node-1"))
    pi = wait_for("the running Job", lambda: workloads(agent.server, agent.cluster_id).get("pi"), agent)
    return str(pi["id"])


def test_samples_from_the_dcgm_exporter_reach_the_metrics_route(agent: Agent, cluster: FakeCluster) -> None:
    with dcgm_exporter(exposition(GPUS)) as exporter:
        url = f"http://127.0.0.1:{exporter.server_address[1]}/metrics"
        with agent.running("--dcgm-exporter-url", url, "--utilisation-interval", "0.3"):
            workload_id = _running_gpu_job(agent, cluster)
            found = wait_for("GPU samples", lambda: _measured(agent, workload_id), agent)
            assert found == {"GPU_UTILIZATION": {MEAN_UTIL}, "GPU_MEMORY_USAGE_BYTES": {MEMORY_BYTES}}
            # The GPUs go idle: the next readings say so.
            exporter.text = exposition([("pi-x7k2p", 0, 0), ("pi-x7k2p", 0, 0), (None, 99, 500)])
            wait_for(
                "the idle readings",
                lambda: "0" in ((_measured(agent, workload_id) or {}).get("GPU_UTILIZATION") or set()),
                agent,
            )
    assert "no GPU utilisation" not in agent.log


def test_samples_through_prometheus_reach_the_metrics_route(
    agent: Agent, cluster: FakeCluster, tmp_path: Path
) -> None:
    with (
        dcgm_exporter(exposition(GPUS)) as exporter,
        scraping(
            tmp_path / "prometheus",
            f"127.0.0.1:{exporter.server_address[1]}",
            job="dcgm",
            # The exporter's own pod, as Kubernetes service discovery labels the target: Prometheus
            # then renames the exporter's pod labels.
            labels={"pod": "dcgm-exporter-x", "namespace": "gpu-operator"},
        ) as url,
        agent.running("--prometheus-url", url, "--utilisation-interval", "0.3"),
    ):
        workload_id = _running_gpu_job(agent, cluster)
        found = wait_for("GPU samples", lambda: _measured(agent, workload_id), agent)
        assert found == {"GPU_UTILIZATION": {MEAN_UTIL}, "GPU_MEMORY_USAGE_BYTES": {MEMORY_BYTES}}


def test_an_unreachable_exporter_is_said_once_and_the_agent_goes_on(
    agent: Agent, cluster: FakeCluster
) -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"  # nothing listens there
    with agent.running("--dcgm-exporter-url", url, "--utilisation-interval", "0.2"):
        _running_gpu_job(agent, cluster)
        wait_for("the agent's complaint", lambda: "no GPU utilisation" in agent.log, agent)
        time.sleep(1.0)  # several more readings fail meanwhile
    assert agent.log.count("no GPU utilisation") == 1
