"""THE filter table: filterBy / search cases over the hand-made inventory, with hand-worked answers.

Each case is checked three ways with the same expected labels: the query layer directly
(``list_workloads`` / ``count_workloads`` at ``NOW_MS``), ``GET /api/v1/workloads`` (every page) and
``GET /api/v1/workloads/count``. The inventory and each workload's derived values are in
``inventory.py``; the semantics are docs/contract.md §5 and ``workplane.store.compile``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import CLUSTER, wid
from tests.query.conftest import Loaded
from tests.query.inventory import LIVE, NOW_MS, label_of, load_inventory
from workplane.domain.catalog import NATIVE_GROUP, CatalogSnapshot, catalog_id
from workplane.domain.scopes import ScopeSet
from workplane.query.filters import Sort, WorkloadQuery, parse_filter, parse_search
from workplane.store import workloads as store
from workplane.store.database import Database

EVERYTHING = ScopeSet.everything()


@dataclass(frozen=True)
class Case:
    filters: tuple[str, ...]  # filterBy parameters, each exactly as a client sends it
    expected: str  # labels
    search: str | None = None
    deleted: bool = False
    note: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        parts = [*self.filters]
        if self.search is not None:
            parts.append(f"search={self.search!r}")
        if self.deleted:
            parts.append("deleted")
        return " & ".join(parts) or "(none)"


def but(labels: str) -> str:
    """Every live workload except ``labels``."""
    return "".join(sorted(LIVE - set(labels)))


ALL = but("")


def f(*filters: str, expect: str, search: str | None = None, deleted: bool = False) -> Case:
    return Case(tuple(filters), expect, search, deleted)


def s(search: str, expect: str, *filters: str) -> Case:
    return Case(tuple(filters), expect, search)


CASES: list[Case] = [
    f(expect=ALL),
    # --- text: name (== != exact; =@ !@ =^ =$ fold ASCII case; <= >= code points) ---------------
    f("name==alpha", expect="A"),
    f("name==ALPHA", expect="O"),
    f("name==Alpha", expect=""),
    f("name!=alpha", expect=but("A")),
    f("name=@alpha", expect="AO"),
    f("name=@ALP", expect="AO"),
    f("name!@alpha", expect=but("AO")),
    f("name=^b", expect="BD"),
    f("name=$RUN", expect="B"),
    f("name<=Mike", expect="BCFMO"),
    f("name>=golf_1", expect="GIJKLN"),
    f("name>=a", expect="ADEGHIJKLN"),
    # literal % _ \ (never wildcards)
    f("name=@%", expect="CI"),
    f("name=@_", expect="CG"),
    f("name=^golf_", expect="G"),
    f("name=@%_", expect="C"),
    f("name=$%ia", expect="I"),
    f("name=@\\", expect="D"),
    f("name==back\\slash", expect="D"),
    f("name=$\\slash", expect="D"),
    f("name=@\\%", expect=""),
    # ASCII-only case folding: É and é are different letters to =@
    f("name=@MILE", expect="J"),
    f("name=@ÉMILE", expect="J"),
    f("name=@émile", expect=""),
    # --- commas ------------------------------------------------------------------------------
    f("name==a,b", expect="E"),
    f("name=@,", expect="E"),
    f("name=@,b", expect="E"),
    f("name=@a,b,c", expect=""),
    f("name=@a,b,phase==Failed", expect="E"),
    f("name=@a,b,phase==Running", expect=""),
    f("name=@a,phase==Running", expect="AILNO"),
    f("name=@a", "phase==Running", expect="AILNO"),
    f("type==Training,allocatedGPU>=1", expect="AJMN"),
    f("category==Train", "priority>=50", expect="IN"),
    f("phase==Running", "nodepool==default", "priority<=50", expect="A"),
    f("phase==Running,nodepool==default", "priority<=50,name=@a", expect="A"),
    # --- text with nulls: submittedBy (null: B, H) ------------------------------------------------
    f("submittedBy==alice@example.com", expect="AE"),
    f("submittedBy==Alice", expect="I"),
    f("submittedBy=@alice", expect="AEI"),
    f("submittedBy=$EXAMPLE.COM", expect="AE"),
    f("submittedBy=^AL", expect="AEI"),
    f("submittedBy!=alice@example.com", expect=but("AE")),
    f("submittedBy!@alice", expect=but("AEI")),
    f("submittedBy<=zzz", expect="ACDEFGIKLMNO"),
    f("submittedBy>=A", expect=but("BH")),
    # distributedFramework (null except D, E, G, L, N)
    f("distributedFramework==PyTorch", expect="DG"),
    f("distributedFramework!=PyTorch", expect=but("DG")),
    f("distributedFramework=@r", expect="DGL"),
    f("distributedFramework!@r", expect=but("DGL")),
    f("distributedFramework>=A", expect="DEGLN"),
    f("distributedFramework<=P", expect="E"),
    f("distributedFramework=^py", expect="DG"),
    f("distributedFramework=$CH", expect="DG"),
    # --- phase, type, organisation, application ----------------------------------------------
    f("phase==Running", expect="ACGILNO"),
    f("phase=@running", expect="ACGILNO"),
    f("phase!=Running", expect="BDEFHJKM"),
    f("phase=@RUN", expect="ACGILNO"),
    f("phase=^p", expect="BH"),
    f("phase>=S", expect="F"),
    f("phase<=D", expect="DJK"),
    f("type==Training", expect="AEHJMN"),
    f("type=@inference", expect="CK"),
    f("type!=Training", expect="BCDFGIKLO"),
    f("type=^Py", expect="D"),
    f("type=$job", expect="DF"),
    f("projectName==proj-a", expect="ACEGIKMO"),
    f("projectName=@PROJ-C", expect="FJN"),
    f("projectName<=proj-a", expect="ACEFGIJKMNO"),
    f("projectId==2", expect="BDHL"),
    f("departmentName=$-z", expect="FJN"),
    f("departmentName>=dept-y", expect="BDHL"),
    f("departmentId!=10", expect="BDFHJLN"),
    f(f"clusterId=={CLUSTER}", expect=ALL),
    f(f"clusterId!={CLUSTER}", expect=""),
    f("aiApplicationName=@chat", expect="GL"),
    f("aiApplicationName==chat", expect="G"),
    f("aiApplicationName!@BOT", expect=but("L")),
    f("aiApplicationId!=app-1", expect=but("G")),
    f("aiApplicationId>=app-2", expect="L"),
    # --- catalog-resolved: category, priorityClassName, priority ------------------------------
    f("category==Train", expect="ADGHIJMN"),
    f("category=^train", expect="ADGHIJMN"),
    f("category!=Train", expect="BCEFKLO"),
    f("category=@DEP", expect="CEK"),
    f("category!@e", expect="ABDFGHIJLMNO"),
    f("category<=Build", expect="BFLO"),
    f("category>=C", expect="ACDEGHIJKMN"),
    f("category=^b", expect="BFLO"),
    f("category=$AIN", expect="ADGHIJMN"),
    f("priorityClassName==low", expect="ADEGHJM"),
    f("priorityClassName=@high", expect="BIKLNO"),
    f("priorityClassName=^very", expect="FKN"),
    f("priorityClassName=$-LOW", expect="F"),
    f("priorityClassName!=low", expect="BCFIKLNO"),
    f("priorityClassName<=low", expect="ABDEGHJLMO"),
    f("priorityClassName>=medium", expect="CFIKN"),
    f("priority>=100", expect="BKLNO"),
    f("priority<=40", expect="ADEFGHJM"),
    f("priority==80", expect="C"),
    f("priority==125", expect="BLO"),
    f("priority!=40", expect="BCFIKLNO"),
    f("priority>=80.5", expect="BIKLNO"),
    f("priority>=+90", expect="BIKLNO"),
    f("priority==1e2", expect=""),
    f("priority<=2.5e1", expect="F"),
    # --- numbers: allocatedGPU (null: B, H, K), idle* ------------------------------------------
    f("allocatedGPU>=0.5", expect="ACDFGIJLMNO"),
    f("allocatedGPU==0", expect="E"),
    f("allocatedGPU!=0", expect=but("E")),
    f("allocatedGPU!=1", expect="BCDEFGHKLN"),
    f("allocatedGPU<=0.5", expect="CE"),
    f("allocatedGPU==2.5", expect="L"),
    f("allocatedGPU==0.50", expect="C"),
    f("allocatedGPU==.5", expect="C"),
    f("allocatedGPU>=1e1", expect="N"),
    f("allocatedGPU<=-1", expect=""),
    f("allocatedGPU<=1e308", expect=but("BHK")),
    f("idleGpus>=1", expect="FG"),
    f("idleGpus==0", expect="E"),
    f("idleGpus!=0", expect=but("E")),
    f("idleGpus<=5", expect="EFG"),
    f("idleAllocatedGpus<=0.5", expect="EG"),
    f("idleAllocatedGpus>=1.5", expect="F"),
    f("idleAllocatedGpus==0.5", expect="G"),
    # --- clocks (open intervals: pending B, H; running A, C, G, I, L, N, O) ---------------------
    f("totalPendingTimeSeconds==600", expect="A"),
    f("totalPendingTimeSeconds>=600", expect="ABH"),
    f("totalPendingTimeSeconds<=60", expect="EFGIJKLMNO"),
    f("totalPendingTimeSeconds>=100000", expect="BH"),
    f("totalPendingTimeSeconds!=0", expect="ABCDHJM"),
    f("totalPendingTimeSeconds==300.5", expect=""),
    f("totalPendingTimeSeconds!=300.5", expect=ALL),
    f("totalPendingTimeSeconds>=299.5", expect="ABCH"),
    f("totalPendingTimeSeconds<=120.9", expect="DEFGIJKLMNO"),
    f("totalPendingTimeSeconds>=1e300", expect=""),
    f("totalPendingTimeSeconds<=-1e300", expect=""),
    f("totalPendingTimeSeconds<=1e300", expect=ALL),
    f("totalRunningTimeSeconds==3600", expect="D"),
    f("totalRunningTimeSeconds>=3600", expect="ACDEFGILNO"),
    f("totalRunningTimeSeconds<=3599", expect="BHJKM"),
    f("totalRunningTimeSeconds==0", expect="BHK"),
    f("totalRunningTimeSeconds>=1e5", expect="ACGILNO"),
    f("totalRunningTimeSeconds==1e300", expect=""),
    f("totalRunningTimeSeconds!=1e300", expect=ALL),
    # --- times: offsets, bare dates, fractions ------------------------------------------------
    f("createdAt==2024-05-01T14:00:00+02:00", expect="B"),
    f("createdAt==2024-05-01T12:00:00Z", expect="B"),
    f("createdAt==2024-05-01T12:00:00.000Z", expect="B"),
    f("createdAt<=2024-05-02", expect="ABC"),
    f("createdAt>=2024-05-02T08:00:00.25Z", expect="DEFGHIJKLMNO"),
    f("createdAt>=2024-05-02T08:00:00.251Z", expect="EFGHIJKLMNO"),
    f("createdAt==2024-05-02T08:00:00.250000Z", expect="D"),
    f("createdAt==2024-05-03T00:00:00+05:30", expect="E"),
    f("createdAt!=2024-05-05T00:00:00Z", expect=but("GH")),
    f("createdAt>=2024-05-10T00:00:00.999Z", expect="MNO"),
    f("createdAt>=2024-05-10T00:00:00.9991Z", expect="NO"),
    f("createdAt<=2024-05-10T00:00:00.9989Z", expect="ABCDEFGHIJKL"),
    f("createdAt>=2024-05-09T20:00:00-04:00", expect="MNO"),
    f("createdAt<=2024-05-01T10:00:00.000001Z", expect="A"),
    f("createdAt<=2024-05-01T09:59:59.9999999Z", expect=""),
    f("createdAt>=2024-05-05,createdAt<=2024-05-05T23:59:59Z", expect="GH"),
    f("deletedAt>=2000-01-01", expect=""),
    f("deletedAt!=2024-04-02T00:00:00Z", expect=ALL),
    f("completedAt>=2024-05-01", expect="DEJ"),
    f("completedAt<=2024-05-02T20:00:00.5Z", expect="E"),
    f("completedAt<=2024-05-02T20:00:00.499Z", expect=""),
    f("completedAt!=2024-05-03T08:00:00Z", expect=but("D")),
    f("completedAt==2024-05-03T10:00:00+02:00", expect="D"),
    f("phaseUpdatedAt<=2024-05-01T10:10:00Z", expect="A"),
    f("phaseUpdatedAt>=2024-05-11", expect="NO"),
    f("guaranteedRuntimeEndsAt>=2024-05-07", expect="L"),
    f("guaranteedRuntimeEndsAt<=2024-05-06", expect="G"),
    f("guaranteedRuntimeEndsAt!=2024-05-06T00:00:00Z", expect=but("G")),
    # --- nodepool: any pool matches; != and !@ are the negations (none matches) ----------------
    f("nodepool==pool-a", expect="CGI"),
    f("nodepool==Pool-A", expect="F"),
    f("nodepool=@POOL-A", expect="CFGI"),
    f("nodepool!=default", expect="BCDFGHKN"),
    f("nodepool!@pool", expect="ABEHJKMO"),
    f("nodepool>=pool-b", expect="CDLN"),
    f("nodepool<=default", expect="AEFIJLMO"),
    f("nodepool=$-b", expect="CDL"),
    f("nodepool=^default", expect="AEIJLMO"),
    f("nodepool==pool-a,nodepool==pool-b", expect="C"),
    f("nodepool!=pool-a,nodepool!=pool-b", expect="ABEFHJKMNO"),
    # --- deleted workloads --------------------------------------------------------------------
    f(expect="PQR", deleted=True),
    f("deletedAt<=2024-04-10T00:10:00Z", expect="PQ", deleted=True),
    f("deletedAt==2024-04-20", expect="R", deleted=True),
    f("name=@alpha", expect="P", deleted=True),
    f("totalPendingTimeSeconds==600", expect="Q", deleted=True),
    f("totalRunningTimeSeconds==86400", expect="P", deleted=True),
    f("completedAt>=2024-04-16", expect="R", deleted=True),
    f("category==Build", expect="Q", deleted=True),
    f(expect="Q", search="bravo", deleted=True),
    # --- search: every word, case-insensitively, in some searchable field ----------------------
    s("alpha", "AO"),
    s("  ALPHA   ", "AO"),
    s("ALICE", "AEI"),
    s("pytorch", "ADG"),
    s("pytorch proj-a", "AG"),
    s("deploy", "CEK"),
    s("build", "BFLO"),
    s("train", "ADEGHIJMN"),
    s("deploy train", "E"),
    s("train running", "AGIN"),
    s("team-b", "B"),
    s("runai", but("B")),
    s("runai-proj-c", "FJN"),
    s("%", "CI"),
    s("_", "CG"),
    s("\\", "D"),
    s("a,b", "E"),
    s("jupyter", "BI"),
    s("dept-y pending", "BH"),
    s("é", "J"),
    s("É", "J"),
    s("nomatch", ""),
    s("alpha nomatch", ""),
    s("alpha", "AO", "phase==Running"),
    s("alpha", "A", "name==alpha"),
    s("proj-a", "G", "distributedFramework=@torch"),
]


def _query_layer(loaded: Loaded, case: Case) -> tuple[list[str], int]:
    query = WorkloadQuery(
        scope=EVERYTHING,
        deleted=case.deleted,
        terms=parse_filter(list(case.filters)),
        words=parse_search(case.search),
    )
    with loaded.db.read() as conn:
        page = store.list_workloads(
            conn, query, sort=Sort(), offset=0, limit=500, catalog=loaded.catalog, now_ms=NOW_MS
        )
        count = store.count_workloads(conn, query, catalog=loaded.catalog, now_ms=NOW_MS)
    assert not page.has_more
    return [label_of(r.id) for r in page.rows], count


def _params(case: Case) -> list[tuple[str, Any]]:
    params: list[tuple[str, Any]] = [("filterBy", term) for term in case.filters]
    if case.search is not None:
        params.append(("search", case.search))
    if case.deleted:
        params.append(("deleted", "true"))
    return params


def _api(loaded: Loaded, case: Case, limit: int = 4) -> tuple[list[str], int]:
    labels: list[str] = []
    offset = 0
    while True:
        answer = loaded.client.get(
            "/api/v1/workloads", params=[*_params(case), ("offset", offset), ("limit", limit)]
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        labels.extend(label_of(w["id"]) for w in body["workloads"])
        if "next" not in body:
            break
        assert body["next"] == offset + limit
        offset = body["next"]
    answer = loaded.client.get("/api/v1/workloads/count", params=_params(case))
    assert answer.status_code == 200, answer.text
    return labels, answer.json()["count"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(inventory: Loaded, case: Case) -> None:
    expected = sorted(case.expected)
    listed, counted = _query_layer(inventory, case)
    assert sorted(listed) == expected, "query layer list"
    assert len(listed) == len(set(listed))
    assert counted == len(expected), "query layer count"
    api_listed, api_counted = _api(inventory, case)
    assert sorted(api_listed) == expected, "GET /workloads"
    assert len(api_listed) == len(set(api_listed))
    assert api_counted == len(expected), "GET /workloads/count"


def test_cases_are_distinct() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


def test_joined_filter_param_equals_repeated_params(inventory: Loaded) -> None:
    """The official client's form (one parameter, terms joined by commas) and repeated parameters."""
    joined = Case(("phase==Running,nodepool==default,priority<=50",), "A")
    repeated = Case(("phase==Running", "nodepool==default", "priority<=50"), "A")
    assert _api(inventory, joined) == _api(inventory, repeated) == (["A"], 1)


def test_catalog_without_the_type_leaves_category_and_priority_null(inventory: Loaded) -> None:
    """A workload whose type the catalog does not know (and that has no own value) has no category
    or priority: null never satisfies == <= >= =@ =^ =$ and always satisfies != and !@."""
    types = {n: d for n, d in inventory.catalog.types.items() if n != "Training"}
    catalog = CatalogSnapshot(types=types, version=-1)
    # Training workloads: A, E (own category Deploy), H, J, M, N (own priority very-high), P.
    cases = {
        "category==Train": "DGI",
        "category!=Train": "ABCEFHJKLMNOPQR",
        "category=@a": "DGI",
        "category!@a": "ABCEFHJKLMNOPQR",
        "category=@e": "CEKR",
        "category>=A": "BCDEFGIKLOQR",
        "priorityClassName==low": "DG",
        "priorityClassName!=low": "ABCEFHIJKLMNOPQR",
        "priorityClassName<=zzz": "BCDFGIKLNOQR",
        "priority>=0": "BCDFGIKLNOQR",
        "priority!=40": "ABCEFHIJKLMNOPQR",
    }
    for term, expected in cases.items():
        labels = []
        for deleted in (False, True):
            query = WorkloadQuery(scope=EVERYTHING, deleted=deleted, terms=parse_filter([term]))
            with inventory.db.read() as conn:
                page = store.list_workloads(
                    conn, query, sort=Sort(), offset=0, limit=500, catalog=catalog, now_ms=NOW_MS
                )
                assert store.count_workloads(conn, query, catalog=catalog, now_ms=NOW_MS) == len(page.rows)
            labels.extend(label_of(r.id) for r in page.rows)
        assert sorted(labels) == sorted(expected), term


def test_a_type_default_change_applies_everywhere(
    client: TestClient, database: Database, catalog: CatalogSnapshot
) -> None:
    """PUT /workload-types/{id} re-categorises and re-prioritises, at once, every workload of the type
    that was not given its own values: in filters, counts, sorting and the records served."""
    load_inventory(database, catalog)
    answer = client.put(
        f"/api/v1/workload-types/{catalog_id('type', 'Training', NATIVE_GROUP)}",
        json={
            "categoryId": catalog_id("category", "Deploy"),
            "priorityId": catalog_id("priority", "very-high"),
        },
    )
    assert answer.status_code == 200, answer.text
    # Training workloads A, H, J, M (no own values), E (own category), N (own priority) are live.
    for term, expected in {
        "category==Deploy": "ACEHJKMN",
        "category==Train": "DGI",
        "priorityClassName==very-high": "AEHJKMN",
        "priority>=150": "AEHJKMN",
        "priority<=40": "DFG",
    }.items():
        listed = client.get("/api/v1/workloads", params={"filterBy": term, "limit": 500}).json()["workloads"]
        assert sorted(label_of(w["id"]) for w in listed) == sorted(expected), term
        assert client.get("/api/v1/workloads/count", params={"filterBy": term}).json() == {
            "count": len(expected)
        }
    assert client.get("/api/v1/workloads/count", params={"search": "deploy"}).json() == {"count": 8}
    for sort_by in ("category", "priority", "priorityClassName"):
        for order in ("asc", "desc"):
            listed = client.get(
                "/api/v1/workloads", params={"sortBy": sort_by, "sortOrder": order, "limit": 500}
            ).json()["workloads"]
            keys = [(w[sort_by], w["id"]) for w in listed]
            assert keys == sorted(keys, reverse=order == "desc"), (sort_by, order)
    one = client.get(f"/api/v1/workloads/{wid('A')}").json()
    assert (one["category"], one["priorityClassName"], one["priority"], one["preemptible"]) == (
        "Deploy",
        "very-high",
        150,
        False,
    )
