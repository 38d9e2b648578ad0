"""A real ``workplane serve`` process, for the tests that need a socket (the official client, above all).

``running_server(data_dir, database_url)`` starts the server on a free port of 127.0.0.1, waits (bounded)
for ``/api/v1/health``, reads the administrator credential the server wrote on its first start, and
stops the process on exit. Its output goes to ``<data_dir>/server.log``, quoted when it fails to start.
``assert_error`` checks any error answer (in process or over a socket) against the Run:ai ``Error`` shape.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

import httpx

from workplane.services.setup import ADMIN_FILE

LIGHT_HASHING_MAIN = Path(__file__).with_name("light_hashing.py")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it


class ServerFailedToStart(RuntimeError):
    pass


@cache
def tls() -> ssl.SSLContext:
    """One TLS context for the test process's HTTP clients (``verify=tls()``). httpx builds a context
    for every client it makes, loading the CA bundle (34–38 ms of CPU), though the test servers speak
    plain HTTP; the tests make clients in polling loops (the Kubernetes agent's module thousands)."""
    return httpx.create_ssl_context()


def http_client(**options: Any) -> httpx.Client:
    """``httpx.Client(**options)`` on the shared TLS context (``tls``)."""
    return httpx.Client(verify=tls(), **options)


@dataclass(frozen=True)
class Server:
    base_url: str
    data_dir: Path
    client_id: str
    client_secret: str
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def token(self) -> str:
        answer = httpx.post(
            self.url("/api/v1/token"),
            json={
                "grantType": "client_credentials",
                "clientId": self.client_id,
                "clientSecret": self.client_secret,
            },
            timeout=30,
        )
        answer.raise_for_status()
        token: str = answer.json()["accessToken"]
        return token

    @cached_property
    def admin_token(self) -> str:
        """An administrator token, asked for once per server: each ask costs the server a check of the
        secret at full strength (0.1 CPU-s), and tests poll the API through a new client many times a
        second (the Kubernetes agent's module spent four fifths of its server's CPU on them)."""
        return self.token()

    def client(self) -> httpx.Client:
        """An HTTP client for this server, holding the administrator token (``admin_token``)."""
        return http_client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=30
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def read_admin_credential(data_dir: Path) -> tuple[str, str]:
    values = {}
    for line in (data_dir / ADMIN_FILE).read_text().splitlines():
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values["WORKPLANE_CLIENT_ID"], values["WORKPLANE_CLIENT_SECRET"]


def _log_tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def await_health(
    process: subprocess.Popen[bytes], base_url: str, timeout_s: float, *, interval_s: float
) -> Literal["healthy", "exited", "timeout"]:
    """Ask ``GET /api/v1/health`` every ``interval_s`` until it answers 200 (``healthy``), the process
    exits (``exited``) or ``timeout_s`` passes (``timeout``)."""
    deadline = time.monotonic() + timeout_s
    # One client for every try: ``httpx.get`` makes a client, and with it an SSL context that loads the
    # CA bundle, each time (38 ms of CPU a try, about 0.45 CPU-s a start; 1.3 ms with one client).
    with http_client(timeout=2) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return "exited"
            try:
                if http.get(f"{base_url}/api/v1/health").status_code == 200:
                    return "healthy"
            except httpx.HTTPError:
                pass
            time.sleep(interval_s)
    return "timeout"


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    outcome = await_health(process, base_url, START_TIMEOUT_S, interval_s=0.05)
    if outcome == "exited":
        raise ServerFailedToStart(f"the server exited with {process.returncode}:\n{_log_tail(log)}")
    if outcome == "timeout":
        _stop(process)
        raise ServerFailedToStart(f"no healthy answer within {START_TIMEOUT_S:.0f} s:\n{_log_tail(log)}")


def _start(
    data_dir: Path, database_url: str | None, extra_env: dict[str, str], *, strong_hashing: bool
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    # -P: the script's folder (tests/) is not put on the server's import path.
    entry = ["-m", "workplane.cli"] if strong_hashing else ["-P", str(LIGHT_HASHING_MAIN)]
    command = [
        sys.executable,
        *entry,
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if database_url is not None:
        command += ["--database-url", database_url]
    # The test run's own WORKPLANE_* settings (if any) must not leak into the server under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKPLANE_")}
    env.update(extra_env)
    log = data_dir / "server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(process, base_url, log)
    except BaseException:
        _stop(process)
        raise
    return process, base_url


@contextmanager
def running_server(
    data_dir: Path,
    database_url: str | None = None,
    *,
    env: dict[str, str] | None = None,
    strong_hashing: bool = False,
) -> Iterator[Server]:
    """``workplane serve`` on a fresh port; the store is migrated and seeded by the server itself.
    Secrets are hashed at the tests' small work (``tests/light_hashing.py``) unless ``strong_hashing``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(_START_ATTEMPTS):
        try:
            process, base_url = _start(data_dir, database_url, env or {}, strong_hashing=strong_hashing)
            break
        except ServerFailedToStart as exc:
            if "address already in use" not in str(exc).lower() or attempt == _START_ATTEMPTS - 1:
                raise
    try:
        client_id, secret = read_admin_credential(data_dir)
        yield Server(base_url, data_dir, client_id, secret, process)
    finally:
        _stop(process)


# What no error body may contain: traces, SQL, driver or framework names.
LEAK_MARKERS = ("Traceback", 'File "', "SELECT ", "INSERT ", "UPDATE ", "sqlalchemy", "psycopg", "sqlite3")


def assert_error(response: httpx.Response, status: int, *mentions: str) -> dict[str, Any]:
    """``response`` is the Run:ai ``Error`` answer for ``status``: JSON ``{code, message[, details]}``
    with ``code == status``, a message naming each of ``mentions``, and nothing internal."""
    content_type = response.headers.get("content-type", "")
    return assert_error_body(response.status_code, content_type, response.text, status, *mentions)


def assert_error_body(
    status_code: int, content_type: str, text: str, status: int, *mentions: str
) -> dict[str, Any]:
    assert status_code == status, (status_code, text)
    assert content_type.split(";")[0].strip() == "application/json", (content_type, text)
    body = json.loads(text)
    assert isinstance(body, dict), body
    assert set(body) <= {"code", "message", "details"}, body
    assert body["code"] == status, body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    assert isinstance(body.get("details", ""), str), body
    for mention in mentions:
        assert mention in body["message"], (mention, body["message"])
    for marker in LEAK_MARKERS:
        assert marker not in text, (marker, text)
    return body


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, theirs, ...), as /proc lists them now."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found.extend([int(child), *descendants(int(child))])
    return found


def still_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
