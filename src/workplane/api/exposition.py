"""GET /metrics: the server's own metrics for Prometheus, and the middleware that counts requests.

Who may read them is the ``server_metrics`` setting: ``loopback`` (default) answers clients on this
machine only; ``token`` answers them without a token and anyone else with a bearer token whose access
rules grant ``access:admin`` (the administrator role); ``off`` serves nothing and counts nothing. The
client's address is the peer's, or, behind a proxy listed in ``trusted_proxies``, the one the proxy
forwards: a proxy on this machine that is not listed there makes every client look local.
"""

from __future__ import annotations

import ipaddress
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from workplane.api.deps import ServicesDep, caller, client_address, forbidden
from workplane.api.edge import App, Message, Receive, Scope, Send
from workplane.api.errors import ApiError
from workplane.auth.rules import Permission
from workplane.server_metrics import UNMATCHED, ServerMetrics

router = APIRouter(include_in_schema=False)


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # not an address (a Unix socket's peer, a test client's name)
        return False
    # A dual-stack socket (bound to ::) shows an IPv4 client as ::ffff:a.b.c.d.
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


@router.get("/metrics")
async def server_metrics(request: Request, svc: ServicesDep) -> Response:
    mode = svc.settings.server_metrics
    if mode == "off":
        raise ApiError(404, "not found: the server's metrics are off (server_metrics = off)")
    if not is_loopback(client_address(request)):
        if mode == "loopback":
            raise forbidden(
                "permission denied: the server's metrics are answered to clients on this machine only "
                "(server_metrics = loopback)"
            )
        access = await caller(request, svc)
        if not access.allows(Permission.ACCESS_ADMIN):
            raise forbidden(
                f"permission denied: reading the server's metrics needs {Permission.ACCESS_ADMIN}, "
                f"which is not granted to {access.client_id}"
            )
    body, content_type = await run_in_threadpool(svc.metrics.render, svc.db, request.headers.get("accept"))
    return Response(body, media_type=content_type)


class RequestMetrics:
    """Counts every HTTP request by method, route template and status, and times it (a pure ASGI
    middleware, outermost, so that requests refused before routing are counted too). The template is
    the route the router matched, which it leaves in the request's scope."""

    def __init__(self, app: App, *, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the application fails before its answer starts

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None)
            self.metrics.observe_request(
                scope["method"], route or UNMATCHED, status, time.perf_counter() - started
            )
