"""The dashboard's views of GET /workloads/telemetry (docs/contract.md §7) and GET /workloads/{id}/metrics
(§8), in headless Chromium against a real server.

"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.conftest import shoot, sign_in, wait_for_table
from tests.server import Server
from workplane.agents.client import SyncClient

pytestmark = [pytest.mark.server, pytest.mark.browser]


def telemetry(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    answer = api.get("/api/v1/workloads/telemetry", params=params)
    assert answer.status_code == 200, answer.text
    values: list[dict[str, Any]] = answer.json()["values"]
    return values


def tile(page: Any, label: str) -> str:
    text: str = page.inner_text(f".tile:has(.tile-label:text-is('{label}')) .tile-value")
    return text


def test_overview_tiles_and_charts_show_the_telemetry(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    sign_in(page, dashboard_server)
    wait_for_table(page)
    page.click("nav a[data-nav=overview]")
    page.wait_for_selector(".tiles .tile")
    by_phase = {
        v["groups"][0]["value"]: int(v["value"])
        for v in telemetry(api, telemetryType="WORKLOADS_COUNT", groupBy="Phase")
    }
    assert tile(page, "Workloads") == f"{sum(by_phase.values()):,}"
    assert tile(page, "Running") == f"{by_phase.get('Running', 0):,}"
    bars = page.eval_on_selector_all(
        ".card:has(h2:text-is('Workloads by phase')) li",
        "items => items.map(i => [i.querySelector('.bar-label').textContent,"
        " i.querySelector('.bar-value').textContent])",
    )
    assert {label: int(value.replace(",", "")) for label, value in bars} == {
        p: n for p, n in by_phase.items() if n
    }
    # Pending time: the four buckets of the contract, always.
    assert page.locator(".card:has(h2:text-is('Pending time')) svg rect").count() == 4
    departments = telemetry(api, telemetryType="GPU_ALLOCATION", groupBy="DepartmentId")
    drawn = page.locator(".card:has(h2:text-is('GPU allocation by department')) li").count()
    assert drawn == sum(1 for v in departments if float(v["value"]) > 0)
    shoot(page, "overview")

    # Scope to one cluster: every number follows the API's answer for that cluster.
    clusters = telemetry(api, telemetryType="WORKLOADS_COUNT", groupBy="ClusterId")
    cluster = max(clusters, key=lambda v: int(v["value"]))["groups"][0]
    page.wait_for_selector(f"#scope-clusterId option[value='{cluster['value']}']", state="attached")
    page.select_option("#scope-clusterId", cluster["value"])
    scoped = telemetry(api, telemetryType="WORKLOADS_COUNT", clusterId=cluster["value"])
    expected = f"{int(scoped[0]['value']):,}"
    page.wait_for_function("n => document.querySelector('.tile .tile-value').textContent === n", arg=expected)
    assert f"clusterId={cluster['value']}" in page.url
    shoot(page, "overview-cluster")


def test_a_workload_page_draws_its_metrics(page: Any, dashboard_server: Server, api: httpx.Client) -> None:
    found = api.get(
        "/api/v1/workloads",
        params={"filterBy": "type==Inference,allocatedGPU>=2,phase==Running", "limit": 1},
    ).json()["workloads"]
    assert found, "dlrm's snapshot has running inference services with GPUs"
    workload = found[0]
    sign_in(page, dashboard_server)
    wait_for_table(page)
    with page.expect_request(lambda r: "/metrics?" in r.url) as request_info:
        page.goto(f"/#/workloads/{workload['id']}")
    sent = parse_qs(urlsplit(request_info.value.url).query)
    samples = int(sent["numberOfSamples"][0])
    assert 2 <= samples <= 1000
    assert samples != 20, "scaled to the chart's width, not the default"
    chart = page.wait_for_selector(
        ".chart-card[data-metric=GPU_ALLOCATION] svg path.series", state="attached"
    )
    assert chart.get_attribute("d")
    page.wait_for_selector(".chart-card[data-metric=POD_COUNT] svg path.series", state="attached")
    # The chart draws exactly the points the API gives for the same request.
    answer = api.get(
        f"/api/v1/workloads/{workload['id']}/metrics",
        params={key: values[0] for key, values in sent.items()},
    )
    assert answer.status_code in (200, 207), answer.text
    points = next(m["values"] for m in answer.json()["measurements"] if m["type"] == "GPU_ALLOCATION")
    assert len(points) == str(chart.get_attribute("d")).count("L") + 1
    shoot(page, "workload-metrics")

    with page.expect_request(lambda r: "/metrics?" in r.url) as request_info:
        page.click(".segmented button:text-is('1 hour')")
    sent = parse_qs(urlsplit(request_info.value.url).query)

    start = datetime.fromisoformat(sent["start"][0].replace("Z", "+00:00"))
    end = datetime.fromisoformat(sent["end"][0].replace("Z", "+00:00"))
    assert (end - start).total_seconds() == 3600
    assert "range=1h" in page.url


def _card(page: Any, metric: str) -> str:
    text: str = page.inner_text(f".chart-card[data-metric={metric}]")
    return text


def test_a_source_without_utilisation_is_said_plainly(
    page: Any, dashboard_server: Server, api: httpx.Client
) -> None:
    """The replayed traces carry no utilisation: the page says the cluster reports none instead of
    blaming the time range, and legends name only the lines that have data. Once samples exist for a
    workload, a range without them is what the page says again."""
    found = api.get(
        "/api/v1/workloads", params={"filterBy": "phase==Running,allocatedGPU>=1", "limit": 3}
    ).json()["workloads"]
    quiet, sampled = found[1], found[2]
    sign_in(page, dashboard_server)
    wait_for_table(page)
    page.goto(f"/#/workloads/{quiet['id']}")
    page.wait_for_selector(".chart-card[data-metric=GPU_ALLOCATION] svg path.series", state="attached")
    page.wait_for_function(
        "() => document.querySelector('.chart-card[data-metric=GPU_UTILIZATION]')"
        ".textContent.includes('reports no')"
    )
    assert "This cluster reports no GPU utilisation for this workload." in _card(page, "GPU_UTILIZATION")
    assert "No samples in this time range" not in page.inner_text(".charts")
    # CPU: the requested cores are drawn, the usage nobody reports has no legend entry and a note.
    cpu = ".chart-card[data-metric=CPU_USAGE_CORES]"
    if page.locator(f"{cpu} svg path.series").count():
        legend = page.eval_on_selector_all(f"{cpu} .legend > span", "items => items.map(i => i.textContent)")
        assert "Used" not in legend
        assert legend, "the requested cores have an entry"
        assert "This cluster reports no CPU use for this workload." in _card(page, "CPU_USAGE_CORES")
    shoot(page, "workload-no-utilisation")

    # Another workload of the same kind gets one GPU utilisation sample, at its start.
    client = SyncClient(dashboard_server.base_url, dashboard_server.client_id, dashboard_server.client_secret)
    created = int(datetime.fromisoformat(sampled["createdAt"].replace("Z", "+00:00")).timestamp() * 1000)
    sample = {
        "workloadId": sampled["id"],
        "metric": "GPU_UTILIZATION",
        "timestamps": [created + 1000],
        "values": [50],
    }
    assert client.sync(sampled["clusterId"], {"samples": [sample]})["samples"] == 1
    page.goto(f"/#/workloads/{sampled['id']}")
    page.wait_for_selector(".chart-card[data-metric=GPU_UTILIZATION] svg", state="attached")
    assert "reports no GPU utilisation" not in _card(page, "GPU_UTILIZATION")
    page.click(".segmented button:text-is('1 hour')")  # the last hour: long after that sample
    page.wait_for_function(
        "() => document.querySelector('.chart-card[data-metric=GPU_UTILIZATION]')"
        ".textContent.includes('No samples in this time range')"
    )
    assert "reports no GPU utilisation" not in _card(page, "GPU_UTILIZATION")
