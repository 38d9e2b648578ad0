"""Several server processes on one port, each with its own listening socket (SO_REUSEPORT).

uvicorn's own ``--workers`` shares one socket among its processes, and which of them accepts a new
connection is left to whoever wakes first: with a few keep-alive clients, one process ends up with all
of them and the others idle (measured: one process at 1.17 cores, the other at 0.00). With a socket per
process bound with SO_REUSEPORT, the kernel spreads connections over the processes evenly.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from workplane.server_metrics import MULTIPROCESS_ENV

if TYPE_CHECKING:
    import uvicorn

    from workplane.settings import Settings

FACTORY = "workplane.app:create_app_from_env"


# The request line and headers together; a browser's stay under 16 KiB. uvicorn's httptools protocol
# sets no limit of its own and would buffer a header value for as long as a client keeps sending it.
MAX_HEAD_BYTES = 64 * 1024


class ErrorShapedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, answering what its parser refuses (a malformed request line, a control
    character in a header) with Run:ai's ``Error`` body instead of uvicorn's plain-text one, and
    refusing a request head longer than ``MAX_HEAD_BYTES``."""

    _reading_head = True
    _head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head, self._head_bytes = True, 0

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_head and not self.transport.is_closing():
            # Counted after the parser has seen the chunk, so the head's memory stays within the limit
            # plus one read (a pipelined request's previous body may count towards it: harmless).
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self.send_400_response(
                    f"the request line and headers are longer than {MAX_HEAD_BYTES:,} bytes"
                )

    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps(
            {"code": 400, "message": f"invalid HTTP request: {msg}", "details": "Bad request"}
        )
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def uvicorn_config(app: Any, settings: Settings, log_level: str, *, factory: bool = False) -> uvicorn.Config:
    """The one uvicorn configuration every way of serving uses. Forwarded headers are believed only
    from ``trusted_proxies``: uvicorn's own default trusts them from 127.0.0.1, which would let any local
    client name its own address (and so dodge the token throttle and forge the audit log)."""
    import uvicorn

    return uvicorn.Config(
        app,
        factory=factory,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        http=ErrorShapedProtocol,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
    )


class CannotListen(ValueError):
    """The address to serve on cannot be had: taken by another process, not this machine's, or not
    allowed. Found before anything is written (``listen`` comes before the store is prepared)."""


def display_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(host: str, port: int, *, share_port: bool, accept: bool = True) -> socket.socket:
    """A socket bound to ``host:port`` and, with ``accept``, listening. ``share_port`` (SO_REUSEPORT)
    lets the server processes of one ``--workers N`` server each bind the port; a single process does
    not share it, so a second server on a taken port fails here instead of splitting its connections."""
    where = display_address(host, port)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {where}: {exc.strerror or exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if accept:
            sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        hint = " (is another server running there? --port or WORKPLANE_PORT picks another)"
        raise CannotListen(
            f"cannot listen on {where}: {reason}{hint if exc.errno == errno.EADDRINUSE else ''}"
        ) from None
    return sock


def pin_to_cpu(index: int) -> None:
    """Keep this process (the calling thread and every thread it starts later) on one CPU.

    The GIL lets a process use about one core for Python anyway; left free, its event-loop thread and
    thread-pool threads bounce between cores and spend their time handing the GIL over. Measured on the
    2-core machine, one process serving a list page: 352 requests/s free, 763 pinned."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) > 1:
        os.sched_setaffinity(0, {allowed[index % len(allowed)]})


def _worker(index: int, host: str, port: int, log_level: str, pin: bool) -> None:
    import uvicorn

    from workplane.settings import load_settings

    if pin:
        pin_to_cpu(index)
    sock = listen(host, port, share_port=True)
    config = uvicorn_config(FACTORY, load_settings(), log_level, factory=True)
    uvicorn.Server(config).run(sockets=[sock])


def run_workers(host: str, port: int, workers: int, log_level: str, *, pin: bool) -> int:
    """Run ``workers`` server processes (settings come from the environment) until a signal or
    until one of them exits; then stop the others. Returns the exit status."""
    if port == 0:
        raise ValueError("several workers need a fixed --port")
    context = multiprocessing.get_context("spawn")
    # The server's metrics (GET /metrics) summed over the processes: each keeps its counts in files
    # of this directory, which the processes inherit through the environment (server_metrics.py).
    metrics_dir = None
    if not os.environ.get(MULTIPROCESS_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="workplane-metrics-")
        os.environ[MULTIPROCESS_ENV] = metrics_dir
    processes = [
        context.Process(target=_worker, args=(index, host, port, log_level, pin)) for index in range(workers)
    ]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            process.start()
        while not stopping and all(p.is_alive() for p in processes):
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if metrics_dir is not None:
            del os.environ[MULTIPROCESS_ENV]
            shutil.rmtree(metrics_dir, ignore_errors=True)
    failed = [p.exitcode for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    return 0 if stopping or not failed else 1
