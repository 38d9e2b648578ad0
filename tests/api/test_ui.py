"""The dashboard's static files: served at / and /ui/..., with the right types and caching, never in
the way of /api/..., and all of them shipped in the package."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.agents.conftest import fresh_app
from tests.server import assert_error
from workplane.api.ui import assets

STATIC = Path(__file__).resolve().parents[2] / "src" / "workplane" / "ui" / "static"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The dashboard reads no store: one SQLite-backed app serves the whole module."""
    with fresh_app(tmp_path_factory.mktemp("ui")) as app_client:
        yield app_client


def test_the_dashboard_page_is_served_at_the_root(client: TestClient) -> None:
    answer = client.get("/", headers={"Authorization": ""})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/ui/js/main.js">' in answer.text


def test_assets_have_their_content_types(client: TestClient) -> None:
    for path, content_type in [
        ("/ui/js/main.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ]:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"] == content_type
        assert answer.content == (STATIC / path.removeprefix("/ui/")).read_bytes()


def test_an_unchanged_asset_is_a_bodiless_304(client: TestClient) -> None:
    first = client.get("/ui/js/api.js")
    etag = first.headers["etag"]
    again = client.get("/ui/js/api.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    changed = client.get("/ui/js/api.js", headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200


def test_unknown_assets_and_paths_outside_the_folder_are_404(client: TestClient) -> None:
    for path in ("/ui/nope.js", "/ui/../app.py", "/ui/%2e%2e/app.py", "/ui/", "/ui/js"):
        assert_error(client.get(path), 404)


def test_the_api_is_not_shadowed(client: TestClient) -> None:
    assert_error(client.get("/api/v1/no-such-thing"), 404, "no such endpoint")
    assert client.get("/api/v1/workloads/count").status_code == 200


def test_the_dashboard_is_not_part_of_the_api_description(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith("/api/")]


def test_every_file_the_page_names_exists() -> None:
    """The pages' links and every module import resolve to a served asset (a typo would be a blank
    page in the browser, and nothing else would notice)."""
    served = assets()
    for page in STATIC.glob("*.html"):  # the dashboard and the API reference (/api/docs)
        for ref in re.findall(r'(?:href|src)="/ui/([^"]+)"', page.read_text()):
            assert ref in served, (page.name, ref)
    for module in STATIC.glob("js/*.js"):
        for ref in re.findall(r"""(?:from|import\()\s*'\./([^']+)'""", module.read_text()):
            assert f"js/{ref}" in served, (module.name, ref)


def test_every_static_file_is_package_data() -> None:
    """The wheel carries the dashboard: each file matches a package-data pattern of pyproject.toml."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "workplane"
    ]
    for path in STATIC.rglob("*"):
        if path.is_file():
            relative = path.relative_to(ROOT / "src" / "workplane").as_posix()
            assert any(fnmatch(relative, p) and relative.count("/") == p.count("/") for p in patterns), (
                relative
            )
    assert set(assets()) == {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file()}
