"""Several server processes on one port (``workplane serve --workers N``)."""

from __future__ import annotations

import signal
import sqlite3
import time
import uuid
from contextlib import closing
from pathlib import Path

import httpx

from tests.server import descendants, running_server, still_running


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
        workers = [p for p in descendants(server.process.pid) if Path(f"/proc/{p}/cmdline").exists()]
        # The spawn start method adds a small resource-tracker process next to the two workers.
        assert len(workers) >= 2
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        # The resource tracker leaves when it reads the end of its pipe, a moment after the parent has
        # gone: give every child a few seconds (a worker left running would stay past them).
        deadline = time.monotonic() + 5
        while any(still_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if still_running(pid)]


def test_the_server_checkpoints_sqlite_in_the_background(tmp_path: Path) -> None:
    """What a sync batch wrote reaches the database file itself within a few checkpoint intervals,
    although a commit alone would leave a log this small in place (64 MiB is the commit-time threshold
    when the server does not checkpoint)."""
    data = tmp_path / "data"
    cluster = str(uuid.uuid4())
    with running_server(data, env={"WORKPLANE_SQLITE_CHECKPOINT_INTERVAL_S": "0.2"}) as server:
        items = [
            {
                "id": str(uuid.uuid4()),
                "revision": 1,
                "name": f"job-{n}",
                "projectId": "p1",
                "projectName": "project-1",
                "departmentId": "d1",
                "departmentName": "department-1",
                "type": "Training",
                "phase": "Running",
                "createdAt": "2024-05-01T00:00:00Z",
            }
            for n in range(50)
        ]
        answer = httpx.post(
            server.url(f"/api/v1/clusters/{cluster}/sync"),
            json={"workloads": items},
            headers={"Authorization": f"Bearer {server.token()}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        in_file = 0
        for _ in range(100):  # up to 10 s
            # immutable=1: the database file alone, as if there were no write-ahead log. Read so, it
            # takes no lock: a checkpoint copying pages into the file meanwhile can make this read
            # see a half-written file ("malformed"), which is a read too early, not the file's state;
            # asked again at the next turn (a file that stays malformed fails the assertion below).
            try:
                with closing(sqlite3.connect(f"file:{data / 'workplane.db'}?immutable=1", uri=True)) as raw:
                    in_file = raw.execute("SELECT count(*) FROM workloads").fetchone()[0]
            except sqlite3.DatabaseError:
                in_file = 0
            if in_file == 50:
                break
            time.sleep(0.1)
        assert in_file == 50
