"""Live replay: trace time runs at a speed, workloads change phase, a restarted agent resumes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.agents import expected
from tests.agents.conftest import InProcess, count, one
from workplane.agents.replay import LiveReplay, TimeMap
from workplane.agents.traces import Inventory, Trace
from workplane.domain.timefmt import now_ms, parse_to_ms
from workplane.store import ingest
from workplane.store.database import Database

START_S = 11_820_500  # openb's busiest hour
SPEED = 3600.0  # a trace hour per second
SPAN_S = 3 * 3600


def run_bounded(replay: LiveReplay, limit_s: float = 60.0) -> None:
    guard = threading.Timer(limit_s, replay.stop.set)
    guard.start()
    try:
        replay.run()
    finally:
        guard.cancel()


def test_live_replay(client: TestClient, database: Database, openb: Trace) -> None:
    lines: list[str] = []
    replay = LiveReplay(
        Inventory([openb]),
        InProcess(client),
        starts=START_S * 1000,
        speed=SPEED,
        span_ms=SPAN_S * 1000,
        tick_s=0.25,
        log=lines.append,
    )
    run_bounded(replay)
    assert replay.finished, lines
    assert replay.resyncs == 1
    assert replay.changes_sent > 50
    assert replay.timeline is not None
    end = START_S + SPAN_S
    pods = expected.openb_pods()
    live, gone = expected.counts(s for p in pods if (s := p.state_at(end)) is not None)
    for phase in ("Pending", "Running", "Completed", "Failed"):
        assert count(client, f"phase=={phase}") == live[phase], phase
        assert count(client, f"phase=={phase}", deleted=True) == gone[phase], phase
    # Each workload's pod went with it: as many live and deleted pods as workloads.
    pods_count = client.get("/api/v1/workloads/pods/count").json()["count"]
    assert pods_count == count(client, "type==Pod") == sum(live.values())

    # Pods born, scheduled, failed and deleted during the replay went through every phase, in order,
    # at reported times that are trace times compressed by the speed.
    tm = TimeMap(START_S * 1000, replay.timeline.wall_ms, SPEED)
    born = [
        p
        for p in pods
        if p.created > START_S + 1800  # born after the initial resync, even on a slow machine
        and p.scheduled is not None
        and p.created < p.scheduled
        and p.deleted <= end
        and p.last_phase == "Failed"
    ]
    assert born
    for pod in born[:3]:
        assert pod.scheduled is not None
        record = one(client, pod.name)
        assert parse_to_ms(record["createdAt"]) == tm.reported(pod.created * 1000)
        assert parse_to_ms(record["deletedAt"]) == tm.reported(pod.deleted * 1000)
        assert record["phase"] == "Failed"
        own_pods = client.get(f"/api/v1/workloads/{record['id']}/pods", params={"deleted": "true"})
        (own,) = own_pods.json()["pods"]
        assert (own["k8sPhase"], own["completedAt"]) == ("Failed", record["deletedAt"])
        with database.read() as conn:
            history = ingest.history_of(conn, record["id"])
        assert [h["phase"] for h in history] == ["Pending", "Running", "Failed"]
        assert [h["at_ms"] for h in history] == [
            tm.reported(pod.created * 1000),
            tm.reported(pod.scheduled * 1000),
            tm.reported(pod.deleted * 1000),
        ]
    # Nothing is reported after the server's clock.
    latest = max(parse_to_ms(one(client, p.name)["updatedAt"]) for p in born[:3])
    assert latest <= now_ms()

    # A pod running when the replay started and deleted during it ran (deleted - scheduled) / speed.
    ended = next(
        p
        for p in pods
        if p.scheduled is not None
        and p.scheduled < START_S < p.deleted <= end
        and p.deleted - p.scheduled > 3600
    )
    assert ended.scheduled is not None
    record = one(client, ended.name)
    assert record["totalRunningTimeSeconds"] == pytest.approx(
        (ended.deleted - ended.scheduled) / SPEED, abs=1
    )


def test_restarted_agent_resumes_its_timeline(client: TestClient, openb: Trace, tmp_path: Path) -> None:
    state = tmp_path / "replay.json"
    inventory = Inventory([openb])
    first = LiveReplay(
        inventory, InProcess(client), starts=START_S * 1000, speed=SPEED, span_ms=3_600_000, state_file=state
    )
    thread = threading.Thread(target=first.run)
    thread.start()
    deadline = time.monotonic() + 60
    while first.resyncs == 0 and time.monotonic() < deadline:  # the agent "dies" after its first resync
        time.sleep(0.05)
    first.stop.set()
    thread.join(60)
    assert first.timeline is not None
    assert first.resyncs == 1
    lines: list[str] = []
    second = LiveReplay(
        inventory,
        InProcess(client),
        starts=START_S * 1000,
        speed=SPEED,
        span_ms=3_600_000,
        tick_s=0.2,
        state_file=state,
        log=lines.append,
    )
    run_bounded(second)
    assert second.timeline == first.timeline
    assert any("resuming" in line for line in lines)
    assert second.finished
    end = START_S + 3600
    live, _ = expected.counts(s for p in expected.openb_pods() if (s := p.state_at(end)) is not None)
    assert count(client, "phase==Running") == live["Running"]
    # Another speed is another timeline: it starts over.
    third = LiveReplay(
        inventory, InProcess(client), starts=START_S * 1000, speed=SPEED / 2, span_ms=0, state_file=state
    )
    run_bounded(third)
    assert third.timeline is not None
    assert third.timeline.wall_ms > first.timeline.wall_ms
