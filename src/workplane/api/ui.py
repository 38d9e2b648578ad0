"""The dashboard: ``/`` serves its page, ``/ui/<asset>`` its static files (``workplane/ui/static``).

The dashboard is a client of the public API like any other (it signs in through ``POST /api/v1/token``),
so nothing here touches the store. Its views live in the URL fragment (``/#/workloads?...``): the server
only ever sees ``/`` and ``/ui/...``, which keeps every ``/api/...`` path out of the page's way.

Assets are plain files (no bundler, nothing built at install time), read once and kept in memory. They
carry no version in their names, so they are served with ``Cache-Control: no-cache`` and a strong ETag:
a browser revalidates each load and gets a bodiless 304 while the file is unchanged, and never runs a
stale script after an upgrade.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Header, Path
from fastapi.responses import Response

from workplane.api.errors import not_found

router = APIRouter(include_in_schema=False)

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# Scripts and styles of this origin only; the page makes API calls to its own origin only.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every file under ``ui/static`` by its path relative to that folder (``js/api.js``)."""
    found: dict[str, Asset] = {}
    root = resources.files("workplane.ui") / "static"

    def walk(folder: resources.abc.Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(entry, f"{name}/")
                continue
            suffix = "." + entry.name.rpartition(".")[2]
            if suffix not in CONTENT_TYPES:
                continue
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[name] = Asset(body, CONTENT_TYPES[suffix], etag)

    walk(root, "")
    return found


def serve_asset(asset: Asset, if_none_match: str | None, **extra_headers: str) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache", **SECURITY_HEADERS, **extra_headers}
    if if_none_match is not None and asset.etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


IfNoneMatch = Annotated[str | None, Header()]


@router.get("/")
def dashboard(if_none_match: IfNoneMatch = None) -> Response:
    return serve_asset(assets()["index.html"], if_none_match)


@router.get("/ui/{asset:path}")
def dashboard_asset(asset: Annotated[str, Path()], if_none_match: IfNoneMatch = None) -> Response:
    found = assets().get(asset)
    if found is None:
        raise not_found(f"no such dashboard file: {asset}")
    return serve_asset(found, if_none_match)
