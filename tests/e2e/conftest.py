"""Fixtures of the dashboard's end-to-end tests: a real ``workplane serve`` process holding a replayed
inventory, and headless Chromium (Debian's package, driven by Playwright) pointed at it.

The browser is the system's own (``/usr/bin/chromium``, or ``WORKPLANE_TEST_CHROMIUM``): Playwright
never downloads one. ``scripts/install-browser`` (run by ``scripts/test``) installs it with apt-get when
it is missing; without it these tests skip and say why. Screenshots go to ``tests/e2e/out/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server import Server, running_server
from workplane.agents.client import SyncClient
from workplane.agents.replay import snapshot
from workplane.agents.traces import Inventory, load_dlrm, load_openb

OUT = Path(__file__).parent / "out"
# The flags that keep Chromium quiet and working on a machine with no outside network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Busy instants of the two smaller traces: openb's busiest hour (pods waiting) and a quiet stretch of
# dlrm (a few hundred inference services, large pod counts).
OPENB_AT_MS = 11_820_500_000
DLRM_AT_MS = 1_300_017_000


def chromium_path() -> str | None:
    candidates = [os.environ.get("WORKPLANE_TEST_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


# Package-scoped, not session-scoped: Playwright's synchronous API runs an event loop in this thread
# while it is open, and every later test on the same worker that calls ``asyncio.run`` would fail
# ("cannot be called from a running event loop"). The suite hands files out longest first, so other
# files run after these on the same worker.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: scripts/install-browser installs Debian's chromium (needs root and apt)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the dev lock pins it
        pytest.skip("playwright is not installed (scripts/bootstrap dev)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the e2e session, filled by the replay agent with snapshots of openb and dlrm."""
    data_dir = tmp_path_factory.mktemp("e2e-data")
    with running_server(data_dir, env={"WORKPLANE_RETENTION_INTERVAL_S": "0"}) as server:
        client = SyncClient(server.base_url, server.client_id, server.client_secret)
        quiet = lambda _line: None  # noqa: E731
        snapshot(Inventory([load_openb()]), client, OPENB_AT_MS, log=quiet)
        snapshot(Inventory([load_dlrm()]), client, DLRM_AT_MS, log=quiet)
        yield server


@pytest.fixture(scope="session")
def api(dashboard_server: Server) -> Iterator[httpx.Client]:
    with dashboard_server.client() as client:
        yield client


@pytest.fixture
def page(browser: Any, dashboard_server: Server, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser tab (its own sessionStorage) at 1440×900; JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=dashboard_server.base_url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.set_default_timeout(15_000)
    yield tab
    OUT.mkdir(exist_ok=True)
    tab.screenshot(path=str(OUT / f"{request.node.name}-last.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shoot(page: Any, name: str) -> None:
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)


def sign_in(page: Any, server: Server, secret: str | None = None) -> None:
    page.goto("/")
    page.fill("#client-id", server.client_id)
    page.fill("#client-secret", secret if secret is not None else server.client_secret)
    page.click("form.signin-card button[type=submit]")


def wait_for_table(page: Any) -> None:
    """Until the table shows the answer to the current view (no request in flight)."""
    page.wait_for_selector(".table-wrap[data-loaded] table:not(.busy)")
    page.wait_for_function("() => !document.querySelector('table.workloads.busy')")


def row_ids(page: Any) -> list[str]:
    ids: list[str] = page.eval_on_selector_all("tbody tr[data-id]", "rows => rows.map(r => r.dataset.id)")
    return ids
