"""What every request must satisfy before any route sees it (a pure ASGI middleware).

- No NUL character in the path, the query string or the body: PostgreSQL's text cannot hold one, and
  refusing it here means no route can forget to (sync batches excepted: their validation names the
  item that holds one). In JSON a NUL can only be written as the escape
  ``\\u0000`` (a raw one is invalid JSON); an escaped backslash before ``u0000`` is ordinary text.
- A body no larger than a limit: ``max_sync_body_bytes`` for agents' sync batches (up to 20,000
  items), ``max_body_bytes`` for everything else. A declared ``Content-Length`` over the limit is refused
  before a byte is read; a chunked body is refused as soon as it passes the limit.

Both answer 400 in Run:ai's ``Error`` shape, saying what was wrong.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from workplane.api.errors import error_response
from workplane.store.database import CURRENT_CANCEL, QueryCancel

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_SYNC_PATH = re.compile(r"^/api/v1/clusters/[^/]+/sync$")
_NUL_ESCAPE = b"\\u0000"


def json_has_nul(body: bytes) -> bool:
    """Whether ``body`` holds a NUL: raw, or as a ``\\u0000`` escape that is not itself escaped text
    (``\\\\u0000`` is a backslash followed by "u0000")."""
    if b"\x00" in body:
        return True
    start = body.find(_NUL_ESCAPE)
    while start != -1:
        backslashes = 0
        while start - backslashes - 1 >= 0 and body[start - backslashes - 1] == 0x5C:
            backslashes += 1
        if backslashes % 2 == 0:  # the escape's own backslash is not escaped
            return True
        start = body.find(_NUL_ESCAPE, start + 1)
    return False


def _target_problem(scope: Scope) -> str | None:
    query: bytes = scope.get("query_string", b"")
    if "\x00" in scope.get("path", "") or b"\x00" in scope.get("raw_path", b""):
        return "invalid request: the path contains a NUL character"
    if b"\x00" in query or b"%00" in query:
        text = query.decode("latin-1")
        for name, value in parse_qsl(text, keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                shown = name.replace("\x00", "\\0")[:40]
                return f"invalid {shown}: the value contains a NUL character"
        return "invalid request: the query string contains a NUL character"
    return None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class EdgeGuard:
    def __init__(self, app: App, *, max_body_bytes: int, max_sync_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_sync_body_bytes = max_sync_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _target_problem(scope)
        if problem is not None:
            await _refuse(scope, receive, send, problem)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.max_sync_body_bytes if _SYNC_PATH.match(scope["path"]) else self.max_body_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, f"invalid request: the body is larger than {limit:,} bytes")
            return
        body, more = await _read_body(receive, limit)
        if more is not None:
            await _refuse(scope, receive, send, more)
            return
        # A sync batch is checked field by field when it holds a NUL, so the answer names the item
        # (``services.ingest.parse_batch``); every other body is refused here.
        if not _SYNC_PATH.match(scope["path"]) and json_has_nul(body):
            await _refuse(scope, receive, send, "invalid request: the body contains a NUL character")
            return
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, str | None]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", "invalid request: the client went away"
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", f"invalid request: the body is larger than {limit:,} bytes"
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, as one message; after it, the client's own messages (disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    await error_response(400, message)(scope, receive, send)


class CancelOnDisconnect:
    """Stops a GET request's database read when its client disconnects before the answer: a reader
    that gives up does not leave a query running to its timeout. The request gets a ``QueryCancel``
    (``store.database``) that ``Database.read`` attaches its connection to; a watcher waits for the
    client's ``http.disconnect`` while the route runs."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        cancel = QueryCancel()
        token = CURRENT_CANCEL.set(cancel)
        messages: asyncio.Queue[Message] = asyncio.Queue()
        answered = False

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    # Once the answer has started the reads are over (servers also report the end of
                    # an answered request as a disconnect). Cancelling a PostgreSQL query is a round
                    # trip of its own: off the event loop.
                    if not answered:
                        await asyncio.to_thread(cancel.cancel)
                    await messages.put(message)
                    return
                await messages.put(message)

        async def sending(message: Message) -> None:
            nonlocal answered
            answered = True
            await send(message)

        watcher = asyncio.create_task(watch())
        try:
            await self.app(scope, messages.get, sending)
        finally:
            watcher.cancel()
            CURRENT_CANCEL.reset(token)
