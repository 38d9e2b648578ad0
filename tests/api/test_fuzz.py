"""Property-based conformance of the HTTP API.

1. schemathesis drives every operation of the app's own description (``/api/openapi.json``), in process
   on SQLite and on PostgreSQL, with an administrator token, on generated valid and invalid requests:
   no answer is a 5xx, every status is documented, every body matches its documented schema and content
   type, and every error is the ``Error`` shape with ``code`` equal to the status.
2. schemathesis drives Run:ai's own description (the upstream document shipped in the package) for every
   operation the server implements: no 5xx, bodies of Run:ai's schemas, errors in the ``Error`` shape,
   and no status beyond those declared but the few Run:ai's clients meet anyway (``UPSTREAM_UNDOCUMENTED``).
3. hypothesis feeds arbitrary text to every query parameter of ``/workloads`` and ``/workloads/count``:
   the answer is always 200 or a 400 ``Error``, never a 5xx (on both databases, whose SQL differs).

Both are bounded (a fixed number of examples per operation, derandomised so a run is reproducible);
``WORKPLANE_FUZZ_EXAMPLES=<n>`` raises the count and randomises for a longer local hunt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from importlib import resources
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import CLUSTER, load, wid, workload
from tests.server import assert_error_body
from workplane.domain.catalog import catalog_id
from workplane.domain.fields import FIELDS
from workplane.domain.timefmt import now_ms
from workplane.query.filters import OPERATORS
from workplane.store import workloads as store
from workplane.store.database import Database

_EXAMPLES_OVERRIDE = os.environ.get("WORKPLANE_FUZZ_EXAMPLES")
EXAMPLES = int(_EXAMPLES_OVERRIDE or 20)


def _settings(max_examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=_EXAMPLES_OVERRIDE is None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def _load_inventory(database: Database) -> None:
    load(
        database,
        workload(
            "train-a",
            allocatedResources={"gpu": 2, "gpuMemory": "10Gi", "cpu": 1.5, "cpuMemory": "200Mi"},
            podsRequestedResources={"gpuRequestType": "portion", "gpuPortion": 0.5},
            requestedPods={"number": 2, "min": 1},
            currentNodePools=["pool-1", "pool-2"],
            images=["nvcr.io/nvidia/pytorch:24.01"],
            submittedBy="alice@example.com",
            idleGpus=1,
            idleAllocatedGpus=0.5,
        ),
        workload("train-b", phase="Pending", category="Build", priorityClassName="very-high"),
        workload("job-1", type="PyTorchJob", phase="Completed", distributedFramework="PyTorch"),
        workload(
            "serve-1",
            type="Inference",
            phaseMessage="waiting",
            phaseReason="OverLimit",
            pendingSchedulingMessages=[
                {
                    "nodePool": "default",
                    "phaseReason": "OverLimit",
                    "reason": "Over limit",
                    "userMessage": "x",
                }
            ],
        ),
        workload("gone", phase="Failed"),
    )
    with database.write() as conn:
        store.delete_workload(conn, str(wid("gone")), deleted_at_ms=now_ms())


def _known_path_values() -> dict[str, list[str]]:
    """Ids that exist, so the fuzzing reaches past 404 on operations with a path parameter."""
    return {
        "workloadId": [str(wid(label)) for label in ("train-a", "serve-1", "gone")],
        "categoryId": [catalog_id("category", name) for name in ("Build", "Train", "Deploy")],
        "workloadTypeId": [
            catalog_id("type", "Training", "run.ai"),
            catalog_id("type", "PyTorchJob", "kubeflow.org"),
            catalog_id("type", "Pod", ""),
        ],
        "clusterId": [str(CLUSTER)],
    }


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _check_error_shape(response: Any) -> None:
    if response.status_code >= 400:
        content_type = ",".join(response.headers.get("content-type", []))
        assert_error_body(response.status_code, content_type, response.content.decode(), response.status_code)


def _strategy(operation: Any, mode: GenerationMode) -> st.SearchStrategy[Any]:
    generated = operation.as_strategy(generation_mode=mode)
    names = [p.name for p in operation.path_parameters]
    known = _known_path_values()
    if not names or any(name not in known for name in names):
        return generated
    existing = st.fixed_dictionaries({name: st.sampled_from(known[name]) for name in names}).flatmap(
        lambda values: operation.as_strategy(generation_mode=mode, path_parameters=values)
    )
    return st.one_of(generated, existing)


@pytest.mark.no_cover
def test_every_operation_conforms_to_the_description(client: TestClient, database: Database) -> None:
    _load_inventory(database)
    document = client.get("/api/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    schema.app = client.app
    token = client.headers["Authorization"]

    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in GenerationMode:
            run = _fuzz(operation, mode, token, document="own")
            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to vary (e.g. no parameters at all in negative mode)
            except Exception as exc:
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:3000]
    assert operations >= 12
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())


# The requests the derandomized generation drew for each operation and mode, kept from the first
# store's run for the second's: drawing them again would give the very same requests (the generation
# is derandomized and does not depend on the answers unless a check fails), and drawing them is most
# of these tests' CPU (hypothesis and schemathesis: about 70 of the 100 CPU-s of a store's run of
# ``test_every_operation_conforms_to_the_description``, profiled). A run that fails keeps nothing, so
# the other store draws its own; ``WORKPLANE_FUZZ_EXAMPLES`` (random draws) keeps nothing either.
_DRAWN: dict[tuple[str, str, str], list[Any]] = {}


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    token: str,
    checks: list[Any] = CHECKS,
    undocumented: frozenset[int] = frozenset(),
    *,
    document: str,
) -> Callable[[], None]:
    def check(case: Any) -> None:
        response = case.call(headers={"Authorization": token})
        case.validate_response(response, checks=checks)
        _check_error_shape(response)
        if undocumented:
            documented = {int(code) for code in operation.definition.raw["responses"] if code.isdigit()}
            assert response.status_code in documented | undocumented, (case.as_curl_command(), response.text)

    key = (document, operation.label, mode.value)
    if key in _DRAWN:

        def replay() -> None:
            for drawn in _DRAWN[key]:
                check(_same_request(operation, drawn))

        return replay

    drawn_now: list[Any] = []

    @given(case=_strategy(operation, mode))
    @_settings(EXAMPLES)
    def run(case: Any) -> None:
        if _EXAMPLES_OVERRIDE is None:
            drawn_now.append(_same_request(operation, case))  # a copy: the call may add to it
        check(case)

    def draw_and_check() -> None:
        run()
        if _EXAMPLES_OVERRIDE is None:
            _DRAWN[key] = drawn_now

    return draw_and_check


def _same_request(operation: Any, case: Any) -> Any:
    """``case``'s request as a case of ``operation`` (the other store's app, or a copy for later; the
    values are shared, the mappings the call could add to are not)."""
    return operation.Case(
        method=case.method,
        path_parameters=dict(case.path_parameters),
        headers=dict(case.headers),
        cookies=dict(case.cookies),
        query=dict(case.query),
        body=case.body,
        media_type=case.media_type,
        multipart_content_types=case.multipart_content_types,
        _meta=case.meta,
    )


# --- arbitrary text in every list parameter ---------------------------------------------------------

_fields = st.sampled_from(sorted(FIELDS))
_operators = st.sampled_from(OPERATORS)
_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["2024-05-01", "2024-05-01T12:00:00Z", "1", "-1.5", "1e999", "NaN", "Running", "%", "_", "\\"]
    ),
)
_terms = st.one_of(
    st.text(max_size=30),
    st.builds(lambda f, o, v: f + o + v, _fields, _operators, _values),
)
_anything = st.text(max_size=30)
_parameters = st.fixed_dictionaries(
    {},
    optional={
        "filterBy": st.one_of(st.lists(_terms, max_size=3).map(",".join), _terms),
        "sortBy": st.one_of(_fields, _anything),
        "sortOrder": st.one_of(st.sampled_from(["asc", "desc", "SortOrder.desc", "DESC"]), _anything),
        "search": _anything,
        "limit": st.one_of(st.integers(-5, 600).map(str), _anything),
        "offset": st.one_of(st.integers(-5, 10**12).map(str), _anything),
        "deleted": st.one_of(st.sampled_from(["true", "false", "True", "0", "Deleted.true"]), _anything),
    },
)


def test_arbitrary_query_text_is_answered_200_or_400(client: TestClient, database: Database) -> None:
    _load_inventory(database)

    @given(params=_parameters, path=st.sampled_from(["/api/v1/workloads", "/api/v1/workloads/count"]))
    @_settings(max(EXAMPLES * 15, 300))
    def run(params: dict[str, str], path: str) -> None:
        answer = client.get(path, params=params)
        assert answer.status_code in (200, 400), (params, answer.status_code, answer.text)
        if answer.status_code == 400:
            assert_error_body(400, answer.headers["content-type"], answer.text, 400)
        elif path.endswith("/count"):
            assert isinstance(answer.json()["count"], int)
        else:
            assert isinstance(answer.json()["workloads"], list)

    run()


@pytest.mark.parametrize("path", ["/api/v1/workloads", "/api/v1/workloads/count"])
def test_the_same_term_repeated_or_comma_joined_selects_the_same(
    client: TestClient, database: Database, path: str
) -> None:
    _load_inventory(database)
    terms = ["phase!=Pending", "name=@-", "createdAt>=2024-01-01"]
    joined = client.get(path, params={"filterBy": ",".join(terms)})
    repeated = client.get(path, params=[("filterBy", t) for t in terms])
    assert joined.status_code == repeated.status_code == 200
    if path.endswith("/count"):
        assert joined.json() == repeated.json() == {"count": 3}
    else:  # the names only: time accounting moves with the clock between the two requests
        names = {"train-a", "job-1", "serve-1"}
        assert {w["name"] for w in joined.json()["workloads"]} == names
        assert [w["name"] for w in repeated.json()["workloads"]] == [
            w["name"] for w in joined.json()["workloads"]
        ]


# --- the upstream description, for the operations implemented ---------------------------------------

UPSTREAM = json.loads(
    resources.files("workplane.api").joinpath("spec/runai-openapi-workloads.json").read_text(encoding="utf-8")
)


def _describe(exc: BaseException) -> str:
    """The failure and, for a group (hypothesis' flaky-result report), what each member says."""
    text = str(exc)
    if isinstance(exc, BaseExceptionGroup):
        text += "".join(f"\n  - {_describe(member)}" for member in exc.exceptions)
    return text[:3000]


# What Run:ai's document leaves out of some operations but its clients meet all the same: the 400 of a
# malformed parameter (a filter term, a negative limit), the 404 of an id that does not exist (deleting
# a workload type), and the token endpoint's 401 for wrong client credentials and 429 of its throttle.
UPSTREAM_UNDOCUMENTED = frozenset({400, 401, 404, 429})
UPSTREAM_CHECKS = [check for check in CHECKS if check is not status_code_conformance]


@pytest.mark.no_cover
def test_the_upstream_description_holds_where_implemented(client: TestClient, database: Database) -> None:
    """Run:ai's own description of each operation the server implements, driven the same way: a client
    generated from Run:ai's document gets no 5xx, only answers it declares, bodies of its schemas, and
    errors in the ``Error`` shape."""
    _load_inventory(database)
    own = client.get("/api/openapi.json").json()["paths"]
    implemented = {(method, path) for path, operations in own.items() for method in operations}
    schema = schemathesis.openapi.from_dict(UPSTREAM)
    schema.app = client.app
    token = client.headers["Authorization"]

    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.lower(), operation.path) not in implemented:
            continue
        operations += 1
        for mode in GenerationMode:
            try:
                _fuzz(operation, mode, token, UPSTREAM_CHECKS, UPSTREAM_UNDOCUMENTED, document="upstream")()
            except hypothesis.errors.Unsatisfiable:
                pass
            except (Exception, BaseExceptionGroup) as exc:
                failures[f"{operation.label} ({mode.value})"] = _describe(exc)
    assert operations >= 10
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
