"""``workplane serve`` takes its address before it writes anything: on a taken port it says so in one
line naming the address and leaves the data directory and the database as they were."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.server import STOP_TIMEOUT_S, free_port

SERVE_TIMEOUT_S = 60


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 another program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        yield occupant.getsockname()[1]


def serve(data_dir: Path, *argv: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKPLANE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "workplane.cli", "serve", "--data-dir", str(data_dir), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_taken_port_is_one_line_and_nothing_is_written(
    taken_port: int, empty_url: str, workers: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    argv = ["--host", "127.0.0.1", "--port", str(taken_port), "--workers", workers]
    # SQLite: the default store, in the data directory; PostgreSQL: a database never migrated.
    postgres = empty_url.startswith("postgresql")
    if postgres:
        argv += ["--database-url", empty_url]
    process = serve(data_dir, *argv)
    out, err = process.communicate(timeout=SERVE_TIMEOUT_S)
    assert process.returncode != 0
    assert out == ""
    assert err == (
        f"workplane: cannot listen on 127.0.0.1:{taken_port}: address already in use "
        "(is another server running there? --port or WORKPLANE_PORT picks another)\n"
    )
    # No store, no signing key, no administrator credential: not even the folder.
    assert not data_dir.exists(), list(data_dir.iterdir())
    if postgres:
        assert tables(empty_url) == []


def test_an_address_not_of_this_machine_is_one_line(tmp_path: Path) -> None:
    process = serve(tmp_path / "data", "--host", "192.0.2.1", "--port", str(free_port()))
    _, err = process.communicate(timeout=SERVE_TIMEOUT_S)
    assert process.returncode != 0
    assert re.fullmatch(r"workplane: cannot listen on 192\.0\.2\.1:\d+: [^\n]+\n", err), err
    assert not (tmp_path / "data").exists()


def test_port_0_serves_on_the_port_the_system_chose(tmp_path: Path) -> None:
    process = serve(tmp_path / "data", "--host", "127.0.0.1", "--port", "0", "--log-level", "warning")
    try:
        assert process.stdout is not None
        said = [process.stdout.readline() for _ in range(4)]  # the new administrator key, then this
        found = re.search(r"serving on http://127\.0\.0\.1:(\d+) ", said[3])
        assert found, said
        port = int(found[1])
        assert port != 0
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        with httpx.Client(timeout=2) as http:  # one client: ``httpx.get`` loads the CA bundle each try
            while time.monotonic() < deadline:
                try:
                    answer = http.get(f"http://127.0.0.1:{port}/api/v1/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
        assert answer.status_code == 200
        assert process.stdout.readline().strip() == f"dashboard: http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.communicate(timeout=STOP_TIMEOUT_S)
