"""What the HTTP layer refuses, over a real socket to ``workplane serve``: every refusal is a 400 in
Run:ai's ``Error`` shape and comes at once — a malformed request, a control character in a header, a
request head longer than the limit, a body larger than the limit (declared or sent)."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.server import Server, running_server
from workplane.serving import MAX_HEAD_BYTES

ANSWER_S = 5.0  # far longer than any of these takes; a server that waits for more would exceed it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("http") / "data") as running:
        yield running


def _exchange(server: Server, request: bytes, piece: int = 8192) -> tuple[bytes, float]:
    """Send ``request`` in pieces, stopping early once the server answers (as a client would); then
    read the answer until the server closes or the head and declared body are in."""
    host, port = server.base_url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=ANSWER_S) as sock:
        for at in range(0, len(request), piece):
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered before the whole request was sent
            try:
                sock.sendall(request[at : at + piece])
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while time.monotonic() - started < ANSWER_S:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
            if length and len(body) >= int(length[0].split(b":")[1]):
                break
    return answer, time.monotonic() - started


def _assert_error_400(answer: bytes, *mentions: str) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)
    assert error["code"] == 400
    assert isinstance(error["message"], str)
    for mention in mentions:
        assert mention in error["message"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /api/v1/health HTTP/9.9\r\nHost: x\r\n\r\n",
    ],
    ids=["control-byte-in-header", "no-request-line", "bad-content-length", "bad-version"],
)
def test_a_malformed_request_is_an_error_shaped_400(server: Server, request_bytes: bytes) -> None:
    answer, seconds = _exchange(server, request_bytes)
    _assert_error_400(answer, "invalid HTTP request")
    assert seconds < ANSWER_S


def test_a_head_longer_than_the_limit_is_refused(server: Server) -> None:
    header = b"X-Long: " + b"a" * (MAX_HEAD_BYTES * 4) + b"\r\n"
    answer, seconds = _exchange(server, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
    _assert_error_400(answer, f"{MAX_HEAD_BYTES:,} bytes")
    assert seconds < ANSWER_S


def test_a_head_within_the_limit_is_served(server: Server) -> None:
    header = b"X-Long: " + b"a" * (MAX_HEAD_BYTES // 2) + b"\r\n"
    answer, _ = _exchange(server, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(server: Server) -> None:
    request = (
        b"POST /api/v1/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 99999999999\r\n\r\n{"
    )
    answer, seconds = _exchange(server, request)
    _assert_error_400(answer, "larger than 1,048,576 bytes")
    assert seconds < ANSWER_S


def test_a_chunked_body_over_the_limit_is_refused(server: Server) -> None:
    chunk = b"a" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    request = (
        b"POST /api/v1/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + body
    )
    answer, seconds = _exchange(server, request)
    _assert_error_400(answer, "larger than 1,048,576 bytes")
    assert seconds < ANSWER_S
