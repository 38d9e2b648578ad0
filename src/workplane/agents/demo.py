"""``workplane serve --demo``: a live replay of the three traces inside the server process.

The replay runs in a thread and talks HTTP to the server's own port, like any agent, once
``/api/v1/health`` answers. Each trace starts at its own busy moment (``Inventory.demo_starts``: the most
running pods among the instants that leave five trace days to play), so all three clusters are busy at
once, and they play at ``DEMO_SPEED`` (one trace minute per second): workloads appear, start, finish and
go away within seconds. Its timeline is kept in ``<data-dir>/demo-replay.json``: a restarted server
resumes it (full resync at the current trace time) instead of starting over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from workplane.agents.client import SyncClient, read_credentials
from workplane.agents.replay import LiveReplay, format_trace_time
from workplane.agents.traces import TRACE_NAMES, Inventory

DEMO_SPEED = 60.0
STATE_FILE = "demo-replay.json"
CREDENTIALS_FILE = "admin-credentials.env"  # written by services.setup.prepare_store

log = logging.getLogger("workplane.demo")


def local_url(host: str, port: int) -> str:
    """The URL an agent in this process uses to reach the server bound to ``host:port``."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (a bind address, compared, not bound)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def banner(url: str, credentials: Path, client_id: str, starts: dict[str, int], speed: float) -> str:
    where = ", ".join(f"{key} from {format_trace_time(ms)}" for key, ms in starts.items())
    return "\n".join(
        [
            f"workplane demo: replaying the traces live at {speed:g}x (a trace minute per second), "
            f"each from a busy moment: {where}",
            f"  dashboard:      {url}/  (sign in with the administrator key below)",
            f"  API:            {url}/api/v1  (description: {url}/api/docs)",
            f"  administrator:  client id {client_id}; secret in {credentials}",
            "  try:",
            f"    source <(sed 's/^/export /' {credentials})",
            f"    TOKEN=$(curl -s -X POST {url}/api/v1/token -H 'Content-Type: application/json' \\",
            '      -d "{\\"grantType\\":\\"client_credentials\\",\\"clientId\\":\\"$WORKPLANE_CLIENT_ID\\",'
            '\\"clientSecret\\":\\"$WORKPLANE_CLIENT_SECRET\\"}" \\',
            "      | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"accessToken\"])')",
            f'    curl -s -H "Authorization: Bearer $TOKEN" '
            f"'{url}/api/v1/workloads/count?filterBy=phase==Running'",
        ]
    )


class _SuccessfulSyncs(logging.Filter):
    """Drops the access-log lines of successful sync requests: the replay's own, once a second per
    cluster, would bury everything else (the replay prints its own progress)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            _, method, path, _, status = args
            return not (method == "POST" and str(path).endswith("/sync") and status == 200)
        return True


def quiet_sync_access_log() -> None:
    """Keep successful sync requests out of uvicorn's access log (uvicorn keeps logger filters when it
    configures logging)."""
    logging.getLogger("uvicorn.access").addFilter(_SuccessfulSyncs())


class Demo:
    """The demo replay thread: ``start()`` before serving, ``stop()`` after."""

    def __init__(
        self,
        url: str,
        data_dir: Path,
        *,
        speed: float = DEMO_SPEED,
        health_timeout_s: float = 300.0,
        out: Callable[[str], None] = print,
    ) -> None:
        self.url = url
        self.data_dir = data_dir
        self.speed = speed
        self.health_timeout_s = health_timeout_s
        self.out = out
        self.replay: LiveReplay | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workplane-demo", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self.replay is not None:
            self.replay.stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self._replay()
        except Exception:  # the demo must never take the server down with it
            log.exception("the demo replay stopped")

    def _replay(self) -> None:
        credentials = self.data_dir / CREDENTIALS_FILE
        inventory = Inventory.load(TRACE_NAMES)  # while the server starts
        starts = inventory.demo_starts()
        probe = SyncClient(self.url, "", "")
        deadline = time.monotonic() + self.health_timeout_s
        while not probe.wait_until_healthy(1.0):
            if self._stop.is_set():
                return
            if time.monotonic() > deadline:
                self.out(f"workplane demo: {self.url}/api/v1/health does not answer; no demo replay")
                return
        if not credentials.is_file():
            self.out(
                f"workplane demo: {credentials} is missing (it is written when the administrator key is "
                "created); create an access key and run `workplane replay --live` instead"
            )
            return
        client_id, secret = read_credentials(credentials)
        client = SyncClient(self.url, client_id, secret)
        self.replay = LiveReplay(
            inventory,
            client,
            starts=starts,
            speed=self.speed,
            state_file=self.data_dir / STATE_FILE,
            log=self.out,
        )
        if self._stop.is_set():
            return
        self.out(banner(self.url, credentials, client_id, starts, self.speed))
        self.replay.run()
