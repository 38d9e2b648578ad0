"""sortBy / sortOrder / offset / limit / deleted over the hand-made inventory (docs/contract.md §5).

Order: by the served value, code points for text; rows with no value last in both directions; ties
broken by id in the same direction. ``next`` is present (= offset + limit) exactly when more rows follow.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import at, create_workload, update_workload, wid, workload
from tests.query.conftest import Loaded
from tests.query.inventory import DELETED, DELETED_AT, EXPECTED, LIVE, NOW_MS, RECORDS, label_of
from workplane.domain.catalog import CatalogSnapshot
from workplane.domain.fields import FIELDS
from workplane.domain.phases import PhaseClock
from workplane.domain.scopes import ScopeSet
from workplane.domain.timefmt import parse_to_ms, to_ms
from workplane.query.filters import Sort, SortOrder, WorkloadQuery
from workplane.store import workloads as store
from workplane.store.database import Database

EVERYTHING = ScopeSet.everything()


def _clock(label: str) -> PhaseClock:
    r = RECORDS[label]
    clock = PhaseClock.start(
        r.phase,
        to_ms(r.phase_updated_at or r.created_at),
        r.total_pending_time_seconds * 1000,
        r.total_running_time_seconds * 1000,
    )
    return clock.stop(DELETED_AT[label]) if label in DELETED_AT else clock


def value(field: str, label: str) -> Any:
    """The value a workload is sorted on, read from the inventory (None: no value)."""
    r = RECORDS[label]
    d = EXPECTED[label]
    simple = {
        "type": r.type,
        "name": r.name,
        "clusterId": str(r.cluster_id),
        "projectId": r.project_id,
        "projectName": r.project_name,
        "departmentId": r.department_id,
        "departmentName": r.department_name,
        "submittedBy": r.submitted_by,
        "phase": str(r.phase),
        "distributedFramework": r.distributed_framework,
        "category": d.category,
        "priorityClassName": d.priority_class_name,
        "aiApplicationId": r.ai_application_id,
        "aiApplicationName": r.ai_application_name,
        "createdAt": to_ms(r.created_at),
        "deletedAt": DELETED_AT.get(label),
        "completedAt": parse_to_ms(d.completed_at) if d.completed_at else None,
        "phaseUpdatedAt": to_ms(r.phase_updated_at or r.created_at),
        "guaranteedRuntimeEndsAt": to_ms(r.guaranteed_runtime_ends_at)
        if r.guaranteed_runtime_ends_at
        else None,
        "allocatedGPU": (r.allocated_resources or {}).get("gpu"),
        "idleGpus": r.idle_gpus,
        "idleAllocatedGpus": r.idle_allocated_gpus,
        "totalPendingTimeSeconds": _clock(label).pending_seconds(NOW_MS),
        "totalRunningTimeSeconds": _clock(label).running_seconds(NOW_MS),
        "priority": d.priority,
        "nodepool": r.current_node_pools[0] if r.current_node_pools else None,
    }
    return simple[field]


def expected_order(field: str, order: SortOrder, labels: frozenset[str] = LIVE) -> list[str]:
    descending = order is SortOrder.DESC
    with_value = [x for x in labels if value(field, x) is not None]
    without = [x for x in labels if value(field, x) is None]
    with_value.sort(key=lambda x: (value(field, x), str(wid(x))), reverse=descending)
    without.sort(key=lambda x: str(wid(x)), reverse=descending)
    return with_value + without


def test_the_oracle_knows_every_sort_field() -> None:
    for field in FIELDS:
        value(field, "A")  # a KeyError here: a field the oracle (and so test_sort) does not cover


def test_the_inventory_has_ties_and_missing_values() -> None:
    """The sort cases below only mean something if most fields have ties or missing values."""
    for field in ("createdAt", "submittedBy", "allocatedGPU", "nodepool", "deletedAt", "category"):
        values = [value(field, x) for x in LIVE]
        assert len(set(values)) < len(values), field


def _store_order(loaded: Loaded, sort: Sort, deleted: bool = False) -> list[str]:
    with loaded.db.read() as conn:
        page = store.list_workloads(
            conn,
            WorkloadQuery(scope=EVERYTHING, deleted=deleted),
            sort=sort,
            offset=0,
            limit=500,
            catalog=loaded.catalog,
            now_ms=NOW_MS,
        )
    return [label_of(r.id) for r in page.rows]


def _api_pages(loaded: Loaded, limit: int, **params: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    offset = 0
    while True:
        answer = loaded.client.get("/api/v1/workloads", params={**params, "offset": offset, "limit": limit})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append([label_of(w["id"]) for w in body["workloads"]])
        if "next" not in body:
            return pages
        assert body["next"] == offset + limit
        offset += limit


@pytest.mark.parametrize("order", list(SortOrder), ids=lambda o: o.value)
@pytest.mark.parametrize("field", list(FIELDS))
def test_sort(inventory: Loaded, field: str, order: SortOrder) -> None:
    expected = expected_order(field, order)
    assert _store_order(inventory, Sort(field, order)) == expected
    # Through the API (the wall clock is later than NOW_MS, but open intervals all grow alike and
    # stay above every closed one, so the order is the same).
    pages = _api_pages(inventory, 4, sortBy=field, sortOrder=order.value)
    assert [x for page in pages for x in page] == expected


@pytest.mark.parametrize("order", list(SortOrder), ids=lambda o: o.value)
def test_sort_deleted(inventory: Loaded, order: SortOrder) -> None:
    for field in ("deletedAt", "name", "totalRunningTimeSeconds", "completedAt"):
        expected = expected_order(field, order, DELETED)
        assert _store_order(inventory, Sort(field, order), deleted=True) == expected
        pages = _api_pages(inventory, 2, sortBy=field, sortOrder=order.value, deleted="true")
        assert [x for page in pages for x in page] == expected


def test_default_order_is_created_at_ascending(inventory: Loaded) -> None:
    expected = expected_order("createdAt", SortOrder.ASC)
    assert _store_order(inventory, Sort()) == expected
    assert [x for p in _api_pages(inventory, 50) for x in p] == expected
    assert [x for p in _api_pages(inventory, 50, sortOrder="desc") for x in p] == expected_order(
        "createdAt", SortOrder.DESC
    )


@pytest.mark.parametrize("limit", [1, 2, 4, 5, 7, 14, 15, 16, 500])
def test_pages_are_disjoint_and_cover_everything(inventory: Loaded, limit: int) -> None:
    for field, order in (("createdAt", "asc"), ("submittedBy", "desc"), ("nodepool", "asc")):
        pages = _api_pages(inventory, limit, sortBy=field, sortOrder=order)
        rows = [x for page in pages for x in page]
        assert rows == expected_order(field, SortOrder(order))
        assert len(rows) == len(set(rows)) == len(LIVE)
        # Every page but the last is full, and the last one is not empty (unless nothing matches).
        assert all(len(page) == limit for page in pages[:-1])
        assert 0 < len(pages[-1]) <= limit
        assert len(pages) == -(-len(LIVE) // limit)


def test_next_exactly_when_more_rows_follow(inventory: Loaded) -> None:
    total = len(LIVE)
    for offset, limit, more in [
        (0, total - 1, True),
        (0, total, False),
        (0, total + 1, False),
        (total - 1, 1, False),
        (total - 2, 1, True),
        (total, 10, False),
        (total + 5, 10, False),
    ]:
        body = inventory.client.get("/api/v1/workloads", params={"offset": offset, "limit": limit}).json()
        assert len(body["workloads"]) == max(0, min(limit, total - offset))
        if more:
            assert body["next"] == offset + limit
        else:
            assert "next" not in body
        with inventory.db.read() as conn:
            page = store.list_workloads(
                conn,
                WorkloadQuery(scope=EVERYTHING),
                sort=Sort(),
                offset=offset,
                limit=limit,
                catalog=inventory.catalog,
                now_ms=NOW_MS,
            )
        assert page.has_more is more
        assert len(page.rows) == len(body["workloads"])


def test_deleted_flag_and_counts(inventory: Loaded) -> None:
    client = inventory.client
    for params, labels in (
        ({}, LIVE),
        ({"deleted": "false"}, LIVE),
        ({"deleted": "true"}, DELETED),
    ):
        listed = [x for p in _api_pages(inventory, 3, **params) for x in p]
        assert sorted(listed) == sorted(labels)
        assert client.get("/api/v1/workloads/count", params=params).json() == {"count": len(labels)}
        deleted = params.get("deleted") == "true"
        with inventory.db.read() as conn:
            count = store.count_workloads(
                conn,
                WorkloadQuery(scope=EVERYTHING, deleted=deleted),
                catalog=inventory.catalog,
                now_ms=NOW_MS,
            )
        assert count == len(labels)


def test_served_values_match_the_oracle(inventory: Loaded) -> None:
    """The sort oracle reads the same values the API serves (clock fields are checked at NOW_MS
    through the store; the API's clock is the wall clock)."""
    for deleted in ("false", "true"):
        body = inventory.client.get("/api/v1/workloads", params={"deleted": deleted, "limit": 500}).json()
        for served in body["workloads"]:
            label = label_of(served["id"])
            assert served["category"] == value("category", label)
            assert served["priorityClassName"] == value("priorityClassName", label)
            assert served["priority"] == value("priority", label)
            assert served["completedAt"] == EXPECTED[label].completed_at
            assert served["name"] == value("name", label)
            first_pool = served["currentNodePools"][0] if served["currentNodePools"] else None
            assert first_pool == value("nodepool", label)
            for field in ("totalPendingTimeSeconds", "totalRunningTimeSeconds"):
                derived = (
                    EXPECTED[label].pending if field.startswith("totalPending") else EXPECTED[label].running
                )
                if derived is not None:  # closed: exact; open: at least the value at NOW_MS
                    assert served[field] == derived == value(field, label)
                else:
                    assert served[field] >= value(field, label) > 1_500_000


def test_clock_sort_ties_on_whole_seconds(database: Database, catalog: CatalogSnapshot) -> None:
    """Two workloads that both served 10 pending seconds (10.7 s and 10.2 s) tie, and the tie is
    broken by id, not by the hidden milliseconds."""
    labels = sorted(["tie-1", "tie-2", "tie-3"], key=lambda x: str(wid(x)))
    low_id, high_id, other = labels
    start = at("2024-05-01T00:00:00Z")
    running_at = {
        low_id: "2024-05-01T00:00:10.700Z",
        high_id: "2024-05-01T00:00:10.200Z",
        other: "2024-05-01T00:00:11Z",
    }
    now = to_ms(at("2024-05-01T01:00:00Z"))
    with database.write() as conn:
        for label in labels:
            create_workload(
                conn,
                workload(label, phase="Pending", createdAt=start),
                catalog=catalog,
                tenant_id=1,
                now_ms=now,
            )
            update_workload(
                conn,
                workload(label, phase="Running", createdAt=start, phaseUpdatedAt=at(running_at[label])),
                catalog=catalog,
                tenant_id=1,
                now_ms=now,
            )
    with database.read() as conn:

        def order(o: SortOrder) -> list[str]:
            page = store.list_workloads(
                conn,
                WorkloadQuery(scope=EVERYTHING),
                sort=Sort("totalPendingTimeSeconds", o),
                offset=0,
                limit=10,
                catalog=catalog,
                now_ms=now,
            )
            return [r.id for r in page.rows]

        ids = {label: str(wid(label)) for label in labels}
        assert order(SortOrder.ASC) == [ids[low_id], ids[high_id], ids[other]]
        assert order(SortOrder.DESC) == [ids[other], ids[high_id], ids[low_id]]
