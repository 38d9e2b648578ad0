"""Several server processes on one port (``workplane serve --workers N``)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.server import running_server


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found.extend(int(c) for c in children)
    return found


def _running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_two_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", env={"WORKPLANE_WORKERS": "2"}) as server:
        token = server.token()
        # New connections each time: the kernel spreads them over the workers' sockets.
        for _ in range(20):
            with httpx.Client(timeout=10) as fresh:
                answer = fresh.get(
                    server.url("/api/v1/workloads/count"), headers={"Authorization": f"Bearer {token}"}
                )
                assert answer.status_code == 200
                assert answer.json() == {"count": 0}
        workers = [p for p in _children(server.process.pid) if Path(f"/proc/{p}/cmdline").exists()]
        # The spawn start method adds a small resource-tracker process next to the two workers.
        assert len(workers) >= 2
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        # The resource tracker leaves when it reads the end of its pipe, a moment after the parent has
        # gone: give every child a few seconds (a worker left running would stay past them).
        deadline = time.monotonic() + 5
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if _running(pid)]
