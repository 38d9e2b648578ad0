"""``/api/docs``: the API reference page for a browser (served from the package, nothing fetched from
elsewhere) and the OpenAPI document for anything else; ``/openapi.json`` and ``/api/openapi.json``
serve the document too. All open: no token."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.agents.conftest import fresh_app
from workplane.api.ui import assets

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
NO_TOKEN = {"Authorization": ""}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The description reads no store: one SQLite-backed app serves the whole module."""
    with fresh_app(tmp_path_factory.mktemp("docs")) as app_client:
        yield app_client


def test_a_browser_gets_the_reference_page(client: TestClient) -> None:
    answer = client.get("/api/docs", headers={**NO_TOKEN, "Accept": BROWSER_ACCEPT})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["vary"] == "Accept"
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert '<script type="module" src="/ui/js/apidocs.js">' in answer.text
    assert answer.content == assets()["api-docs.html"].body
    again = client.get(
        "/api/docs", headers={**NO_TOKEN, "Accept": BROWSER_ACCEPT, "If-None-Match": answer.headers["etag"]}
    )
    assert again.status_code == 304


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_anything_else_gets_the_document(client: TestClient, accept: str | None) -> None:
    headers = {**NO_TOKEN, **({"Accept": accept} if accept else {})}
    answer = client.get("/api/docs", headers=headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["vary"] == "Accept"
    assert answer.json() == client.get("/api/openapi.json", headers=NO_TOKEN).json()


def test_the_document_is_at_openapi_json_too(client: TestClient) -> None:
    answer = client.get("/openapi.json", headers=NO_TOKEN)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    document = answer.json()
    assert document["openapi"].startswith("3.")
    assert document == client.get("/api/openapi.json", headers=NO_TOKEN).json()
    # Where tools look for it; not an operation of the API.
    assert "/openapi.json" not in document["paths"]
    assert "/api/docs" not in document["paths"]


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """The page, its script and its style name only this server's paths (no CDN)."""
    for name in ("api-docs.html", "api-docs.css", "js/apidocs.js"):
        text = assets()[name].body.decode()
        assert not re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", text), name
        assert not re.findall(r"""(?:fetch|import)\s*\(?\s*['"](?:https?:)?//""", text), name
        assert "@import" not in text, name
