"""The API reference page (/api/docs) in headless Chromium at 1280 px: it renders every operation of
the server's own OpenAPI document, grouped by tag, with their parameters and responses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import shoot
from tests.server import Server

pytestmark = [pytest.mark.server, pytest.mark.browser]


def test_the_page_renders_the_servers_operations(page: Any, dashboard_server: Server) -> None:
    document = httpx.get(dashboard_server.url("/api/openapi.json"), timeout=30).json()
    expected = {
        (method.upper(), path, operation["tags"][0])
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/api/docs")  # no sign-in: the reference is open
    page.wait_for_selector("body[data-rendered]")
    shown = page.eval_on_selector_all(
        "section.tag:not(.schemas) article.operation",
        """ops => ops.map(op => [
            op.querySelector('h3 .method').textContent,
            op.querySelector('h3 .path').textContent,
            op.closest('section').querySelector('h2').textContent,
        ])""",
    )
    assert len(shown) == len(expected)
    assert {tuple(s) for s in shown} == expected
    assert page.title().startswith(f"workplane {document['info']['version']}")

    listing = page.locator("#op-get_workloads")
    parameters = listing.locator("table.parameters tbody tr td:first-child code").all_inner_texts()
    documented = [p["name"] for p in document["paths"]["/api/v1/workloads"]["get"]["parameters"]]
    assert parameters == documented
    assert "filterBy" in parameters
    statuses = listing.locator("table.responses tbody tr td:first-child").all_inner_texts()
    assert statuses == list(document["paths"]["/api/v1/workloads"]["get"]["responses"])
    # The health check and the token exchange are marked as needing no token; the list is not.
    assert page.locator("#op-health .badge").inner_text() == "no token"
    assert listing.locator(".badge").count() == 0

    # A response's schema links to the schema, which unfolds with its properties.
    listing.locator("table.responses a.schema-ref", has_text="WorkloadsPage").first.click()
    schema = page.locator("#schema-WorkloadsPage")
    page.wait_for_function("() => document.getElementById('schema-WorkloadsPage').open")
    properties = schema.locator("table.properties tbody tr td:first-child code").all_inner_texts()
    assert "workloads" in properties
    # The page fits the window: nothing hidden behind a horizontal scroll.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shoot(page, "api-docs")


def test_the_table_of_contents_leads_to_each_operation(page: Any, dashboard_server: Server) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/api/docs")
    page.wait_for_selector("body[data-rendered]")
    links = page.locator(".docs-toc li a")
    assert links.count() == page.locator("article.operation").count()
    page.locator(".docs-toc a[href='#op-list_audit_entries']").click()
    page.wait_for_function("() => location.hash === '#op-list_audit_entries'")
    top = page.evaluate("document.getElementById('op-list_audit_entries').getBoundingClientRect().top")
    assert 0 <= top < 200  # in view, below the sticky bar
