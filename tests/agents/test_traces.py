"""Parsing the traces: every row becomes part of a workload, ids are deterministic, timelines are sane."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from tests.agents import expected
from workplane.agents.traces import (
    NAMESPACE,
    RUNNING,
    Inventory,
    Trace,
    load_dlrm,
    load_openb,
    parse_trace_names,
)


def test_row_counts(itp: Trace, openb: Trace, dlrm: Trace) -> None:
    jobs = list(expected.itp_jobs())
    pods = expected.openb_pods()
    instances = expected.dlrm_instances()
    assert len(jobs) == itp.rows == len(itp.workloads) == 69_351
    assert len(pods) == openb.rows == len(openb.workloads) == 8_152
    assert len(instances) == dlrm.rows == 23_871
    assert len({i.app for i in instances}) == len(dlrm.workloads) == 156
    assert Counter(w.type for w in itp.workloads) == {"Training": 69_351}
    assert Counter(w.type for w in openb.workloads) == {"Pod": 8_152}
    assert Counter(w.type for w in dlrm.workloads) == {"Inference": 156}
    # Every ITP project is one ITP cluster, with its jobs.
    per_cluster = Counter(f"itp-cluster{j.cluster}" for j in jobs)
    assert Counter(w.project.name for w in itp.workloads) == per_cluster
    assert {w.project.department for w in itp.workloads} == {"itp"}


def test_ids_are_uuid5_of_the_trace_keys(itp: Trace, openb: Trace, dlrm: Trace) -> None:
    def uuid5(key: str) -> str:
        return str(uuid.uuid5(NAMESPACE, key))

    assert {w.id for w in itp.workloads} == {uuid5(f"itp/{j.job_id}") for j in expected.itp_jobs()}
    assert {w.id for w in openb.workloads} == {uuid5(f"openb/{p.name}") for p in expected.openb_pods()}
    assert {w.id for w in dlrm.workloads} == {uuid5(f"dlrm/{i.app}") for i in expected.dlrm_instances()}
    assert len({itp.cluster.id, openb.cluster.id, dlrm.cluster.id}) == 3
    assert itp.cluster.id == uuid5("cluster/itp")


def test_two_loads_are_identical(openb: Trace, dlrm: Trace) -> None:
    again = Inventory([load_openb(), load_dlrm()])
    assert [t.workloads for t in again.traces] == [openb.workloads, dlrm.workloads]
    assert again.busiest_ms() == Inventory([openb, dlrm]).busiest_ms()


def test_timelines_are_ordered(itp: Trace, openb: Trace, dlrm: Trace) -> None:
    for trace in (itp, openb, dlrm):
        for w in trace.workloads:
            times = [s.at_ms for s in w.steps]
            assert times == sorted(set(times)), w.name
            assert times[0] == w.created_ms
            assert all(not s.deleted for s in w.steps[:-1])
    # A DLRM service's running pods rise and fall with its instances.
    app0 = next(w for w in dlrm.workloads if w.name == "app-0")
    assert len({s.running_pods for s in app0.steps}) > 10
    assert all(s.phase == RUNNING for s in app0.steps if s.running_pods > 0)


def test_event_index_covers_every_step(openb: Trace) -> None:
    events = openb.events
    assert len(events.times) == sum(len(w.steps) for w in openb.workloads)
    assert list(events.times) == sorted(events.times)
    everything = events.window(-1, openb.end_ms)
    assert len(everything) == len(events.times)


def test_trace_names() -> None:
    assert parse_trace_names("dlrm, ITP") == ("dlrm", "itp")
    with pytest.raises(ValueError, match="nope"):
        parse_trace_names("itp,nope")
