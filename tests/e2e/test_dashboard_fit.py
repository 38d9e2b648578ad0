"""What a person meets first on a laptop screen (1280 px): the workloads table fits the window with
every column in view, a link with a malformed filter says what it ignored, and a workload's requested
pods read as a number."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.conftest import shoot, sign_in, wait_for_table
from tests.e2e.test_dashboard import api_ids, expect_rows
from tests.server import Server

pytestmark = [pytest.mark.server, pytest.mark.browser]

# Every column header and the table's right edge inside the table's box; nothing to scroll sideways.
FITS = """() => {
  const wrap = document.querySelector('.table-wrap');
  const box = wrap.getBoundingClientRect();
  const headers = [...document.querySelectorAll('table.workloads thead th')];
  return {
    scroll: wrap.scrollWidth - wrap.clientWidth,
    page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    outside: headers.filter((th) => th.getBoundingClientRect().right > box.right + 0.5)
      .map((th) => th.textContent),
    clipped: headers.filter((th) => th.scrollWidth > th.clientWidth).map((th) => th.textContent),
    columns: headers.length,
  };
}"""


def at(page: Any, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})


@pytest.mark.parametrize("width", [1280, 1440])
@pytest.mark.parametrize("view", ["", "?deleted=1"])
def test_the_table_fits_the_window(page: Any, dashboard_server: Server, width: int, view: str) -> None:
    at(page, width)
    sign_in(page, dashboard_server)
    wait_for_table(page)
    page.goto(f"/#/workloads{view}")
    wait_for_table(page)
    fit = page.evaluate(FITS)
    assert fit["columns"] == (14 if view else 13)
    assert fit["scroll"] <= 0, fit
    assert fit["page"] <= 0, fit
    assert fit["outside"] == [], fit
    assert fit["clipped"] == [], fit  # every header reads in full
    # Names and projects wrap, numbers, times and phases are never cut; a department or cluster too long
    # for its cell ends in an ellipsis, with a title to read it by.
    truncated = page.evaluate(
        """() => [...document.querySelectorAll('table.workloads tbody tr[data-id]')].flatMap((tr) =>
          [...tr.children].map((td, i) => [i, td.textContent, td.title || td.querySelector('[title]')?.title])
            .filter(([i]) => tr.children[i].scrollWidth > tr.children[i].clientWidth))"""
    )
    headers = page.eval_on_selector_all(
        "table.workloads thead th",
        "ths => ths.map(th => (th.querySelector('button')?.firstChild ?? th).textContent)",
    )
    assert {headers[i] for i, _, _ in truncated} <= {"Department", "Cluster"}, truncated
    assert all(title for _, _, title in truncated), truncated
    shoot(page, f"table-{width}{'-deleted' if view else ''}")


def test_a_malformed_filter_in_the_address_is_named_not_dropped_silently(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    at(page, 1280)
    sign_in(page, dashboard_server)
    wait_for_table(page)
    good = "type==Inference"
    page.goto(f"/#/workloads?filter={quote('phase=Running', safe='')}&filter={quote(good, safe='')}")
    notice = page.wait_for_selector(".message.dropped-filters")
    assert notice.is_visible()
    text = notice.inner_text()
    assert "A filter in the address was ignored" in text
    assert "phase=Running" in text
    # The rest of the view holds: the good filter is a chip and the table is the API's answer for it.
    assert page.inner_text(".chip-field") == "Type"
    expect_rows(page, api_ids(api, filterBy=good))
    shoot(page, "dropped-filter")
    # Once the person changes the view, the address holds only real filters and the notice goes.
    page.click(".chip-remove")
    page.wait_for_selector(".message.dropped-filters", state="detached")
    expect_rows(page, api_ids(api))
    assert "phase%3DRunning" not in page.url


def test_requested_pods_are_a_number(page: Any, dashboard_server: Server, api: httpx.Client) -> None:
    at(page, 1280)
    listed = api.get("/api/v1/workloads", params={"filterBy": "name==app-13"}).json()["workloads"]
    (record,) = listed
    requested = record["requestedPods"]["number"]
    assert requested > 1
    sign_in(page, dashboard_server)
    wait_for_table(page)
    page.goto(f"/#/workloads/{record['id']}")
    page.wait_for_selector(".detail .fields")
    shown = page.evaluate(
        """() => [...document.querySelectorAll('dt')].find((dt) => dt.textContent === 'Requested pods')
          .nextElementSibling.textContent"""
    )
    assert shown == f"{requested:,}"
    row = page.evaluate(
        """() => [...document.querySelectorAll('dt')].find((dt) => dt.textContent === 'Running pods')
          .nextElementSibling.textContent"""
    )
    assert row == str(record["runningPods"])
    assert page.is_visible("section.metrics h2")
