"""A small client of the sync protocol (standard library only): tokens, retries, health.

``SyncClient.sync`` posts one batch to ``/api/v1/clusters/{id}/sync``. It fetches an access token with
the client-credentials grant, refreshes it before it expires (and once on a 401), and retries a batch
on 503 and on connection errors with bounded exponential back-off: retrying is safe because the
protocol is idempotent. A 4xx other than 401 is the batch's fault and is raised at once.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

JsonObject = dict[str, Any]


class SyncError(RuntimeError):
    """The server refused a request (4xx other than 401, or 401 with fresh credentials)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class ServerUnavailable(RuntimeError):
    """No answer (connection refused/reset, timeout) or 503, after every retry."""


def read_credentials(path: Path) -> tuple[str, str]:
    """(client id, secret) from a ``WORKPLANE_CLIENT_ID=… / WORKPLANE_CLIENT_SECRET=…`` file, such as
    the ``<data-dir>/admin-credentials.env`` the server writes on first start."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the credentials file {path}: {exc.strerror or exc}") from None
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep:
            values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    try:
        return values["WORKPLANE_CLIENT_ID"], values["WORKPLANE_CLIENT_SECRET"]
    except KeyError:
        raise ValueError(f"{path}: needs WORKPLANE_CLIENT_ID= and WORKPLANE_CLIENT_SECRET= lines") from None


def add_connection_flags(parser: argparse.ArgumentParser, key: str = "access key") -> None:
    """A command's flags for the server it talks to and the access key it signs in with (``key``
    names the kind of key in the help: the access commands need an administrator's)."""
    parser.add_argument(
        "--server", default="http://127.0.0.1:8080", help="base URL of the server (default %(default)s)"
    )
    parser.add_argument("--client-id", help=f"{key} client id (default: from --credentials-file)")
    parser.add_argument("--client-secret", help=f"{key} secret (default: from --credentials-file)")
    parser.add_argument(
        "--credentials-file",
        help="file with WORKPLANE_CLIENT_ID= and WORKPLANE_CLIENT_SECRET= lines, e.g. "
        "<data-dir>/admin-credentials.env (default: those environment variables, else "
        "./data/admin-credentials.env)",
    )


def agent_credentials(
    client_id: str | None, client_secret: str | None, credentials_file: str | None
) -> tuple[str, str]:
    """An agent's (client id, secret): from the flags, else the credentials file, else the
    ``WORKPLANE_CLIENT_ID`` / ``WORKPLANE_CLIENT_SECRET`` environment, else
    ``./data/admin-credentials.env``."""
    if client_id or client_secret:
        if not (client_id and client_secret):
            raise ValueError("give both --client-id and --client-secret (or --credentials-file)")
        return client_id, client_secret
    if credentials_file:
        return read_credentials(Path(credentials_file))
    env_id, env_secret = os.environ.get("WORKPLANE_CLIENT_ID"), os.environ.get("WORKPLANE_CLIENT_SECRET")
    if env_id and env_secret:
        return env_id, env_secret
    default = Path("data") / "admin-credentials.env"
    if default.is_file():
        return read_credentials(default)
    raise ValueError(
        "no credentials: give --client-id and --client-secret, or --credentials-file "
        "<data-dir>/admin-credentials.env"
    )


_CONNECTION_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,  # RemoteDisconnected, IncompleteRead, BadStatusLine
    ConnectionError,
    socket.timeout,
    TimeoutError,
)


def _message(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")[:500]
    if isinstance(parsed, dict) and "message" in parsed:
        return str(parsed["message"])
    return body.decode("utf-8", "replace")[:500]


class SyncClient:
    """Talks to one server. ``outages`` counts requests that found no server (connection errors): an
    agent that sees it rise knows the server may have restarted and does a full resync."""

    def __init__(
        self,
        server: str,
        client_id: str,
        client_secret: str,
        *,
        timeout_s: float = 120.0,
        retries: int = 8,
        backoff_s: float = 0.25,
        max_backoff_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.server = server.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.outages = 0
        self._sleep = sleep
        self._token: str | None = None
        self._token_expires = 0.0

    # -- plumbing ------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        """One attempt: (status, body, headers) for any HTTP answer; connection errors propagate."""
        request = urllib.request.Request(  # noqa: S310 (the URL is the configured server's)
            self.server + path, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310
                return answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read(), dict(error.headers or {})

    def _with_retries(
        self, method: str, path: str, body: bytes | None, headers: Callable[[], dict[str, str]]
    ) -> tuple[int, bytes]:
        delay = self.backoff_s
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
            try:
                status, payload, answer_headers = self._request(method, path, body, headers())
            except _CONNECTION_ERRORS as exc:
                self.outages += 1
                last = f"{type(exc).__name__}: {exc}"
                continue
            if status == 503:
                last = f"503: {_message(payload)}"
                retry_after = answer_headers.get("Retry-After") or answer_headers.get("retry-after")
                if retry_after and retry_after.isdigit():
                    delay = min(max(delay, float(retry_after)), self.max_backoff_s)
                continue
            return status, payload
        raise ServerUnavailable(f"{method} {self.server}{path}: {last} (after {self.retries} retries)")

    # -- API -----------------------------------------------------------------------------------

    def token(self, *, refresh: bool = False) -> str:
        """A valid access token; a new one when ``refresh`` or when the current one is near expiry."""
        if self._token is not None and not refresh and time.monotonic() < self._token_expires:
            return self._token
        body = orjson.dumps(
            {
                "grantType": "client_credentials",
                "clientId": self.client_id,
                "clientSecret": self.client_secret,
            }
        )
        status, payload = self._with_retries(
            "POST", "/api/v1/token", body, lambda: {"Content-Type": "application/json"}
        )
        if status != 200:
            raise SyncError(status, f"token request refused: {_message(payload)}")
        answer = orjson.loads(payload)
        lifetime = float(answer.get("expiresIn") or 3600)
        self._token = str(answer["accessToken"])
        # Renew well before expiry: a batch must not start with a token that lapses on the way.
        self._token_expires = time.monotonic() + max(lifetime - max(60.0, lifetime / 10), lifetime / 2)
        return self._token

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.token()}"}

    def sync(self, cluster_id: str, body: bytes | JsonObject) -> JsonObject:
        """Post one batch; returns ``{"applied", "ignored", "deleted", "samples"}``."""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        path = f"/api/v1/clusters/{cluster_id}/sync"
        status, payload = self._with_retries("POST", path, data, self._headers)
        if status == 401:  # the key or the signing key changed (e.g. a server restarted on a new store)
            self.token(refresh=True)
            status, payload = self._with_retries("POST", path, data, self._headers)
        if status != 200:
            raise SyncError(status, _message(payload))
        result: JsonObject = orjson.loads(payload)
        return result

    def get(self, path: str) -> JsonObject:
        """An authenticated GET of a JSON resource (e.g. ``/api/v1/workloads/count``)."""
        status, payload = self._with_retries("GET", path, None, self._headers)
        if status != 200:
            raise SyncError(status, _message(payload))
        result: JsonObject = orjson.loads(payload)
        return result

    def healthy(self) -> bool:
        """Whether ``/api/v1/health`` answers 200 now (one attempt, no retries)."""
        try:
            status, _, _ = self._request("GET", "/api/v1/health", None, {})
        except _CONNECTION_ERRORS:
            return False
        return status == 200

    def wait_until_healthy(self, timeout_s: float, interval_s: float = 0.25) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.healthy():
                return True
            if time.monotonic() >= deadline:
                return False
            self._sleep(interval_s)
