"""The dashboard in headless Chromium against a real server with replayed data: sign-in, the workloads
table (filters, search, sort, paging, the URL as the view), a workload's page, errors, liveness.

What the table shows is compared with a direct API call for the same query: the page never filters on
its own, so the two must agree row for row.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tests.e2e.conftest import row_ids, shoot, sign_in, wait_for_table
from tests.server import Server

pytestmark = [pytest.mark.server, pytest.mark.browser]


def api_ids(api: httpx.Client, **params: Any) -> list[str]:
    answer = api.get("/api/v1/workloads", params={"limit": 50, **params})
    assert answer.status_code == 200, answer.text
    return [w["id"] for w in answer.json()["workloads"]]


def api_count(api: httpx.Client, **params: Any) -> int:
    answer = api.get("/api/v1/workloads/count", params=params)
    assert answer.status_code == 200, answer.text
    count: int = answer.json()["count"]
    return count


def expect_rows(page: Any, expected: list[str]) -> None:
    """The table settles on exactly ``expected`` (in order)."""
    try:
        page.wait_for_function(
            "ids => JSON.stringify([...document.querySelectorAll('tbody tr[data-id]')]"
            ".map(r => r.dataset.id)) === JSON.stringify(ids)",
            arg=expected,
            timeout=10_000,
        )
    except Exception:
        assert row_ids(page) == expected  # the assertion shows the difference
    assert row_ids(page) == expected


def expect_count(page: Any, prefix: str, timeout_ms: int = 10_000) -> None:
    """The count above the table settles on text starting with ``prefix`` ("1,234", "12 deleted")."""
    page.wait_for_function(
        "prefix => document.querySelector('.count').textContent.startsWith(prefix)",
        arg=prefix,
        timeout=timeout_ms,
    )


def add_filter(page: Any, field: str, op: str, value: str) -> None:
    page.select_option("select.field", field)
    page.select_option("select.op", op)
    page.fill("input.value", value)
    page.click("form.add-filter button[type=submit]")


def signed_in(page: Any, server: Server) -> None:
    sign_in(page, server)
    wait_for_table(page)


def test_a_wrong_key_is_refused_with_a_message(page: Any, dashboard_server: Server) -> None:
    sign_in(page, dashboard_server, secret="not-the-secret")
    alert = page.wait_for_selector(".signin-card .message.error:not([hidden])")
    assert "Wrong access key" in alert.inner_text()
    shoot(page, "signin-refused")
    assert page.evaluate("sessionStorage.getItem('workplane.session')") is None
    assert page.query_selector("table") is None


def test_sign_in_shows_the_workloads_and_sign_out_ends_the_session(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    signed_in(page, dashboard_server)
    expect_rows(page, api_ids(api))
    total = api_count(api)
    expect_count(page, f"{total:,}")
    assert page.inner_text(".who") == dashboard_server.client_id
    shoot(page, "workloads")
    # The token is kept for the tab only, never the secret.
    stored = json.loads(page.evaluate("sessionStorage.getItem('workplane.session')"))
    assert set(stored) == {"token", "expiresAt", "clientId"}
    assert dashboard_server.client_secret not in json.dumps(stored)

    page.click("button.signout")
    page.wait_for_selector("#client-id")
    assert page.evaluate("sessionStorage.getItem('workplane.session')") is None


def test_filters_with_every_kind_of_operator_match_the_api(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    signed_in(page, dashboard_server)
    terms: list[str] = []
    for field, op, value in [
        ("type", "!=", "Pod"),  # dlrm's inference services
        ("name", "=^", "app-"),
        ("name", "!@", "7"),
        ("name", "=$", "3"),
        ("allocatedGPU", ">=", "1"),
        ("priority", "<=", "150"),
        ("projectName", "=@", "INFER"),  # case-insensitive contains
        ("phase", "==", "Running"),
    ]:
        add_filter(page, field, op, value)
        terms.append(f"{field}{op}{value}")
        expect_rows(page, api_ids(api, filterBy=terms))
    assert api_ids(api, filterBy=terms), "the filters should leave some rows to compare"
    chips = page.query_selector_all(".chip")
    assert len(chips) == len(terms)
    expect_count(page, f"{api_count(api, filterBy=terms):,}")
    # Every term is in the URL (the view can be bookmarked); removing a chip removes its term.
    assert parse_qs(urlsplit(page.url).fragment.partition("?")[2])["filter"] == terms
    shoot(page, "filters")
    page.click(".chip:first-child .chip-remove")
    expect_rows(page, api_ids(api, filterBy=terms[1:]))


def test_a_filter_on_names_and_nodepools_across_both_clusters(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    signed_in(page, dashboard_server)
    add_filter(page, "name", "=@", "0")
    add_filter(page, "createdAt", ">=", "2020-01-01")
    expect_rows(page, api_ids(api, filterBy=["name=@0", "createdAt>=2020-01-01"]))


def test_search_sort_and_paging_forward_and_back(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    signed_in(page, dashboard_server)
    page.fill("input.search", "openb")
    page.wait_for_url("**q=openb**")
    expect_rows(page, api_ids(api, search="openb"))
    # 54 of openb's pods match: three pages of 25.
    page.select_option("select[aria-label='Rows per page']", "25")
    view = {"search": "openb", "limit": 25}
    expect_rows(page, api_ids(api, **view))

    page.click("th button[data-sort=allocatedGPU]")
    expect_rows(page, api_ids(api, **view, sortBy="allocatedGPU", sortOrder="asc"))
    page.click("th button[data-sort=allocatedGPU]")
    view |= {"sortBy": "allocatedGPU", "sortOrder": "desc"}
    first = api_ids(api, **view)
    expect_rows(page, first)
    assert page.get_attribute("th[aria-sort]", "aria-sort") == "descending"

    page.click("button.next")
    second = api_ids(api, **view, offset=25)
    assert second
    assert not set(second) & set(first)
    expect_rows(page, second)
    assert "offset=25" in page.url
    page.click("button.next")
    third = api_ids(api, **view, offset=50)
    expect_rows(page, third)
    assert page.is_disabled("button.next"), "the API gave no next: this is the last page"
    assert "Page 3 of 3" in page.inner_text(".pager")
    shoot(page, "paged")
    page.click("button.prev")
    expect_rows(page, second)

    # The browser's own back button walks the view history; the URL alone restores a view.
    page.go_back()
    expect_rows(page, third)
    bookmark = page.url
    page.goto("about:blank")
    page.goto(bookmark)
    wait_for_table(page)
    expect_rows(page, third)
    assert page.input_value("input.search") == "openb"
    page.click("button.first")
    expect_rows(page, first)


def test_deleted_workloads_toggle(page: Any, dashboard_server: Server, api: httpx.Client) -> None:
    signed_in(page, dashboard_server)
    page.check("#show-deleted")
    expected = api_ids(api, deleted="true")
    assert expected, "the openb snapshot holds deleted pods"
    expect_rows(page, expected)
    count = api_count(api, deleted="true")
    expect_count(page, f"{count:,} deleted")
    # Deleted workloads show (and sort by) when they were deleted.
    page.click("th button[data-sort=deletedAt]")
    expect_rows(page, api_ids(api, deleted="true", sortBy="deletedAt", sortOrder="asc"))
    shoot(page, "deleted")


def test_an_api_error_is_shown_not_a_blank_page(page: Any, dashboard_server: Server) -> None:
    signed_in(page, dashboard_server)
    page.goto("/#/workloads?filter=" + quote("createdAt=@2024", safe=""))
    alert = page.wait_for_selector(".message.error")
    text = alert.inner_text()
    assert "HTTP 400" in text
    assert "createdAt=@2024" in text  # the API's own message names the term
    assert page.query_selector("h1").inner_text() == "Workloads"
    shoot(page, "api-error")
    page.click(".chip-remove")
    page.wait_for_selector(".message-slot .message.error", state="detached")


def test_keyboard_opens_a_workload_and_its_page_shows_the_record(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    signed_in(page, dashboard_server)
    page.goto("/#/workloads?filter=" + quote("name==app-13", safe=""))
    (target,) = api_ids(api, filterBy="name==app-13")
    expect_rows(page, [target])
    page.focus("tbody tr[data-id]")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/#/workloads/{target}")
    page.wait_for_selector(".detail .fields")
    record = api.get(f"/api/v1/workloads/{target}").json()
    assert page.inner_text(".page-head h1") == "app-13"
    body = page.inner_text(".detail")
    for value in (record["id"], record["projectName"], record["namespace"], record["priorityClassName"]):
        assert value in body
    assert record["phase"] in page.inner_text(".page-head")
    # The raw record is there in full.
    raw = json.loads(page.text_content("details.raw pre") or "")
    assert raw["id"] == target
    shoot(page, "workload")
    # Back to the list keeps its view.
    page.click("a.back")
    expect_rows(page, [target])


@pytest.mark.parametrize("workload_id", ["00000000-0000-4000-8000-000000000000", "not-a-workload-id"])
def test_an_unknown_workload_is_a_not_found_page(
    page: Any, dashboard_server: Server, workload_id: str
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    signed_in(page, dashboard_server)
    page.goto(f"/#/workloads/{workload_id}")
    notice = page.wait_for_selector(".message.not-found")
    assert page.inner_text(".page-head h1") == "Workload not found"
    text = notice.inner_text()
    assert workload_id in text
    assert ("HTTP 404" if workload_id.startswith("0000") else "HTTP 400") in text
    assert page.title() == "Workload not found · workplane"
    # No empty record or metrics around it: nothing but the notice and the way back.
    assert not page.is_visible("section.metrics")
    assert not page.query_selector_all(".detail > *")
    shoot(page, f"workload-not-found-{workload_id[:4]}")
    page.click(".not-found a")
    wait_for_table(page)


def test_the_dashboard_never_shadows_the_api(dashboard_server: Server) -> None:
    answer = httpx.get(dashboard_server.url("/api/v1/no-such-thing"))
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/json")


def test_serve_prints_the_dashboard_address(dashboard_server: Server) -> None:
    log = (dashboard_server.data_dir / "server.log").read_text()
    assert f"dashboard: {dashboard_server.base_url}/" in log


def test_the_token_is_renewed_before_it_expires(page: Any, dashboard_server: Server) -> None:
    """With the secret in memory the tab renews its token a minute before it expires; after a reload
    (no secret) the session ends when the token does, with a message."""
    page.clock.install()
    signed_in(page, dashboard_server)
    first = json.loads(page.evaluate("sessionStorage.getItem('workplane.session')"))
    lifetime_s = (first["expiresAt"] - page.evaluate("Date.now()")) / 1000
    assert 3000 < lifetime_s <= 3600
    with page.expect_request("**/api/v1/token"):
        page.clock.fast_forward(int((lifetime_s - 50) * 1000))
    page.wait_for_function(
        "old => JSON.parse(sessionStorage.getItem('workplane.session')).expiresAt > old",
        arg=first["expiresAt"],
    )
    assert page.query_selector("#client-id") is None

    page.reload()
    wait_for_table(page)
    page.clock.fast_forward(3_600_000)
    alert = page.wait_for_selector(".signin-card .message.error:not([hidden])")
    assert "session has expired" in alert.inner_text()


# Last in this module: it moves the openb cluster six hours on, for the tests that follow it.
def test_open_pages_refresh_while_the_data_changes(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    from tests.e2e.conftest import OPENB_AT_MS
    from workplane.agents.client import SyncClient
    from workplane.agents.replay import snapshot
    from workplane.agents.traces import Inventory, load_openb

    signed_in(page, dashboard_server)
    page.goto("/#/workloads?filter=type%3D%3DPod")
    wait_for_table(page)
    before = api_count(api, filterBy="type==Pod")
    expect_count(page, f"{before:,}")
    # Move openb six hours on (pods come and go), as a live replay would; the page follows by itself.
    client = SyncClient(dashboard_server.base_url, dashboard_server.client_id, dashboard_server.client_secret)
    snapshot(Inventory([load_openb()]), client, OPENB_AT_MS + 6 * 3_600_000, log=lambda _line: None)
    after = api_count(api, filterBy="type==Pod")
    assert after != before
    # The poll runs every 5 s; allow for a slow machine.
    expect_count(page, f"{after:,}", timeout_ms=15_000)
    expect_rows(page, api_ids(api, filterBy="type==Pod"))


def test_a_workloads_page_shows_its_pods_and_events(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    """An openb workload (the replay reports its pod) with an event its agent reported: the page lists
    the pod as the pods route serves it, and the event."""
    (workload,) = api.get(
        "/api/v1/workloads", params={"filterBy": "type==Pod,phase==Running", "limit": 1}
    ).json()["workloads"]
    (pod,) = api.get(f"/api/v1/workloads/{workload['id']}/pods").json()["pods"]
    event = {
        "id": "5f0e5c55-0000-4000-8000-00000000e2e0",
        "workloadId": workload["id"],
        "revision": 1,
        "createdAt": pod["createdAt"],
        "type": "Warning",
        "reason": "FailedScheduling",
        "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
        "source": "default-scheduler",
        "involvedObject": {"uid": pod["id"], "kind": "Pod", "name": pod["name"], "namespace": "openb"},
    }
    answer = api.post(f"/api/v1/clusters/{workload['clusterId']}/sync", json={"events": [event]})
    assert answer.status_code == 200, answer.text
    signed_in(page, dashboard_server)
    page.goto(f"/#/workloads/{workload['id']}")
    row = page.wait_for_selector(f".pods-card tr[data-pod='{pod['id']}']")
    cells = row.inner_text()
    for value in (pod["name"], "Running", pod["currentNodePool"]):
        assert value in cells
    assert "1 live, 0 deleted" in page.inner_text(".pods-card h2")
    event_row = page.wait_for_selector(f".events-card tr[data-event='{event['id']}']")
    for value in ("Warning", "FailedScheduling", f"Pod/{pod['name']}", event["message"]):
        assert value in event_row.inner_text()
    shoot(page, "workload-pods-and-events")


def test_a_workload_without_pods_or_events_says_so(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    """Every replayed workload has pods, so the test reports one of its own beside a DLRM service (and
    deletes it afterwards, leaving the session's data as it found it)."""
    (template,) = api.get("/api/v1/workloads", params={"filterBy": "name==app-13"}).json()["workloads"]
    created = template["createdAt"]
    observation = {
        "id": "5f0e5c55-0000-4000-8000-0000000e2e01",
        "revision": 1,
        "name": "no-pods-yet",
        "type": template["type"],
        "phase": "Pending",
        "createdAt": created,
        "phaseUpdatedAt": created,
        **{key: template[key] for key in ("projectId", "projectName", "departmentId", "departmentName")},
    }
    path = f"/api/v1/clusters/{template['clusterId']}/sync"
    answer = api.post(path, json={"workloads": [observation]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == 1
    try:
        signed_in(page, dashboard_server)
        page.goto(f"/#/workloads/{observation['id']}")
        page.wait_for_selector(".pods-card")
        assert "No pods reported" in page.inner_text(".pods-card")
        assert "No events reported" in page.inner_text(".events-card")
    finally:
        gone = {**observation, "revision": 2, "deletedAt": created}
        assert api.post(path, json={"workloads": [gone]}).json()["deleted"] == 1
