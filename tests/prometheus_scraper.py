"""A real Prometheus (Debian's ``prometheus``) that scrapes one target on 127.0.0.1 every second.

Skips the test where no ``prometheus`` binary is installed (scripts/install-prometheus installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.server import _stop as stop_process
from tests.server import free_port, http_client

START_S = 30.0


@contextmanager
def scraping(workdir: Path, target: str, *, job: str, labels: dict[str, str] | None = None) -> Iterator[str]:
    """Prometheus scraping ``target`` (host:port, path /metrics) as ``job``, with ``labels`` as the
    target's own labels (what Kubernetes service discovery would give); yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("no prometheus binary (scripts/install-prometheus installs Debian's)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "prometheus.yml"
    static = {"targets": [target], "labels": labels or {}}
    # YAML is a superset of JSON: the configuration is written as JSON.
    config.write_bytes(
        orjson.dumps(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [{"job_name": job, "static_configs": [static]}],
            }
        )
    )
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (workdir / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        with http_client(timeout=2) as http:  # one client for every try
            while not _ready(http, url):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(
                        f"Prometheus did not start: {(workdir / 'prometheus.log').read_text()[-2000:]}"
                    )
                time.sleep(0.1)
        yield url
    finally:
        stop_process(process)


def _ready(http: httpx.Client, url: str) -> bool:
    try:
        return http.get(f"{url}/-/ready").status_code == 200
    except httpx.TransportError:
        return False


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    with http_client(timeout=10) as http:  # polled: the shared TLS context, not a new one each ask
        answer = http.get(f"{url}/api/v1/query", params={"query": promql})
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result
