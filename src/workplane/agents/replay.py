"""Replaying traces into a server through the sync protocol: a snapshot, or live.

**Snapshot** (``snapshot``): the state of every workload at trace instant T — every workload created
by then, in the step in force at T, deleted ones included (with their ``deletedAt``) — sent as one
full resync per cluster in batches of ``batch_size``. Deterministic: the same T gives the same ids,
revisions and phases, so it serves tests and benchmarks.

**Live** (``LiveReplay``): trace time runs at ``speed`` × wall-clock time from a start instant. It
begins with a full resync of the state at the start, then every ``tick_s`` sends the steps that fell
due since the last tick. A workload with several steps in one tick sends them in order, in successive
batches (a batch keeps only each workload's newest item), so the server sees every phase change.
When the server was unreachable (or a request found it gone, i.e. it may have restarted) the agent
sends what it missed and then a full resync of the state at its current trace time, and goes on.

**Reported times.** One affine map per run: trace instant t is reported as
``wall_ms + (t - trace_ms) / speed``, where ``trace_ms`` is the start instant (the snapshot's T) and
``wall_ms`` the wall-clock time when the replay started. A snapshot uses speed 1: T is "now" and
everything before it keeps its real spacing. A live replay compresses trace time by ``speed``: events are
reported at the wall-clock instant they are replayed, so reported times never run ahead of the server
clock and the open Pending / Running intervals that the server computes as now − since grow at the
rate trace time is played. Durations in the store are trace durations / speed.

**Revisions** are the trace time of the step, in milliseconds: they grow with every change of a workload
and are the same in every replay, so a repeated or resumed replay changes nothing twice. A store
therefore follows one trace timeline: replaying an instant earlier than one it has already seen changes
nothing that the later one reported (start over on an empty store).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue
from typing import Any, Protocol

import orjson

from workplane.agents.client import ServerUnavailable
from workplane.agents.traces import (
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    Cluster,
    InstancePod,
    Inventory,
    Trace,
    Workload,
    memory,
)
from workplane.domain.timefmt import format_ms, now_ms
from workplane.files import write_private

JsonObject = dict[str, Any]
BATCH_SIZE = 2000
# Batches of a resync with the server at once: the server applies concurrent batches in parallel
# (one per sync worker process, by default one per CPU).
IN_FLIGHT = 2
DAY_MS = 86_400_000
State = tuple[Workload, int]  # a workload at one of its steps (an index into ``Workload.steps``)


class Transport(Protocol):
    """Where batches go: ``client.SyncClient``, or an adapter over an in-process test client."""

    outages: int

    def sync(self, cluster_id: str, body: bytes) -> JsonObject: ...


@dataclass(frozen=True, slots=True)
class TimeMap:
    """Trace instant ``trace_ms`` is reported as ``wall_ms``; trace time runs ``speed`` times faster."""

    trace_ms: int
    wall_ms: int
    speed: float = 1.0

    def reported(self, trace_ms: int) -> int:
        return self.wall_ms + math.floor((trace_ms - self.trace_ms) / self.speed)

    def trace_at(self, wall_ms: int) -> int:
        return self.trace_ms + math.floor((wall_ms - self.wall_ms) * self.speed)

    def seconds(self, trace_duration_ms: int) -> int:
        return math.floor(trace_duration_ms / self.speed / 1000)


def format_trace_time(ms: int) -> str:
    """A trace instant for people: ``16d 05:06:49`` after the trace start."""
    seconds = ms // 1000
    days, rest = divmod(seconds, 86_400)
    return f"{days}d {rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*$")
_UNIT_MS = {"": 1000, "s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS}


def parse_trace_time(text: str, inventory: Inventory | None = None) -> int:
    """A trace instant in ms: seconds (``1400809``), with a unit (``16.2d``, ``36h``, ``90m``,
    ``120s``), or ``start``, ``busiest``, ``end`` (these two need the inventory)."""
    word = text.strip().lower()
    if word == "start":
        return 0
    if word in ("end", "busiest"):
        if inventory is None:
            raise ValueError(f"{text!r} needs the traces")
        return inventory.end_ms if word == "end" else inventory.busiest_ms()
    match = _DURATION.match(word)
    if match is None:
        raise ValueError(
            f"invalid trace time {text!r}: give seconds (1400809), a duration (16.2d, 36h, 90m) "
            "or start, busiest, end"
        )
    return round(float(match.group(1)) * _UNIT_MS[match.group(2)])


# ------------------------------------------------------------------------------- observations


def observation(w: Workload, k: int, tm: TimeMap) -> JsonObject:
    """The sync item for step ``k`` of ``w``: the workload's full state, with the time it spent
    Pending / Running before its current phase (so a workload the server first learns about in a later
    phase still gets the right totals)."""
    steps = w.steps
    step = steps[k]
    start = k
    while start > 0 and steps[start - 1].phase == step.phase:
        start -= 1
    pending = running = 0
    for i in range(start):
        spent = steps[i + 1].at_ms - steps[i].at_ms
        if steps[i].phase == PENDING:
            pending += spent
        elif steps[i].phase == RUNNING:
            running += spent
    requested = step.requested or w.requested
    requested_json = requested.json() if requested is not None else None
    item: JsonObject = {
        "id": w.id,
        "revision": step.at_ms,
        "observedAt": format_ms(tm.reported(step.at_ms)),
        "name": w.name,
        "projectId": w.project.name,
        "projectName": w.project.name,
        "departmentId": w.project.department,
        "departmentName": w.project.department,
        "type": w.type,
        "phase": step.phase,
        "createdAt": format_ms(tm.reported(w.created_ms)),
        "phaseUpdatedAt": format_ms(tm.reported(steps[start].at_ms)),
        "runningPods": step.running_pods,
        "requestedPods": {"number": step.requested_pods},
        "workloadRequestedResources": requested_json,
        "podsRequestedResources": requested_json if w.single_pod else None,
        "allocatedResources": step.allocated(),
        "currentNodePools": list(step.pools),
        "totalPendingTimeSeconds": tm.seconds(pending),
        "totalRunningTimeSeconds": tm.seconds(running),
    }
    if step.deleted:
        item["deletedAt"] = format_ms(tm.reported(step.at_ms))
    return item


# Kubernetes pod phases of the replayed states (a pod's own phase, not the workload's).
_POD_PHASES = {PENDING: "Pending", RUNNING: "Running", COMPLETED: "Succeeded", FAILED: "Failed"}


def pod_item(w: Workload, k: int, tm: TimeMap) -> JsonObject | None:
    """The sync item of the workload's pod at step ``k``, where the trace's records are pods
    (``Workload.pod_id``); its revision is the step's, as the workload's is."""
    if w.pod_id is None:
        return None
    step = w.steps[k]
    pools = next((s.pools for s in reversed(w.steps[: k + 1]) if s.pools), ())
    item: JsonObject = {
        "id": w.pod_id,
        "workloadId": w.id,
        "revision": step.at_ms,
        "name": w.name,
        "createdAt": format_ms(tm.reported(w.created_ms)),
        "k8sPhase": _POD_PHASES.get(step.phase, "Unknown"),
        "currentNodePool": pools[0] if pools else None,
        "requestedResources": w.requested.json() if w.requested is not None else None,
        "allocatedResources": step.allocated() if step.running else None,
    }
    if step.phase in (COMPLETED, FAILED):
        item["completedAt"] = format_ms(tm.reported(step.at_ms))
    if step.deleted:
        item["deletedAt"] = format_ms(tm.reported(step.at_ms))
    return item


def instance_pod_item(w: Workload, pod: InstancePod, k: int, tm: TimeMap) -> JsonObject:
    """The sync item of one of the workload's instances (``Workload.instances``) as of step ``k``'s
    instant, with the step's revision."""
    at_ms = w.steps[k].at_ms
    ran, gone = pod.ran_by(at_ms), pod.gone_at(at_ms)
    allocated: JsonObject = {"gpu": pod.gpu, "cpu": pod.cpu, "cpuMemory": memory(pod.memory_mib)}
    item: JsonObject = {
        "id": pod.id,
        "workloadId": w.id,
        "revision": at_ms,
        "name": pod.name,
        "createdAt": format_ms(tm.reported(pod.created_ms)),
        "k8sPhase": "Running" if ran else "Pending",
        "currentNodePool": pod.pool if ran else None,
        "requestedResources": pod.requested.json(),
        "allocatedResources": allocated if ran and not gone else None,
    }
    if gone and pod.ended_ms is not None:
        item["deletedAt"] = format_ms(tm.reported(pod.ended_ms))
    return item


def pod_items(w: Workload, k: int, tm: TimeMap, *, resync: bool) -> list[JsonObject]:
    """The pods to send with step ``k`` of ``w``: its one pod (openb), or its instances (DLRM) — in a
    resync those that exist at the step, otherwise those that changed since the step before."""
    if w.pod_id is not None:
        return [item] if (item := pod_item(w, k, tm)) is not None else []
    pods = w.pods_live_at(w.steps[k].at_ms) if resync else w.pods_changed_at(k)
    return [instance_pod_item(w, pod, k, tm) for pod in pods]


# ------------------------------------------------------------------------------------ sending


@dataclass
class Progress:
    """Counters of one replay, and the progress lines it prints."""

    log: Callable[[str], None] = print
    every_s: float = 2.0
    batches: int = 0
    items: int = 0
    applied: int = 0
    ignored: int = 0
    deleted: int = 0
    started: float = field(default_factory=time.monotonic)
    _last_line: float = 0.0

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        return self.items / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def add(self, items: int, result: JsonObject) -> None:
        self.batches += 1
        self.items += items
        self.applied += int(result.get("applied", 0))
        self.ignored += int(result.get("ignored", 0))
        self.deleted += int(result.get("deleted", 0))

    def maybe_report(self, what: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_line >= self.every_s:
            self._last_line = now
            self.log(
                f"replay: {what}: {self.items:,} workloads in {self.batches:,} batches, "
                f"{self.elapsed_s:.1f} s, {self.rate:,.0f} workloads/s"
            )


@dataclass(frozen=True, slots=True)
class _Batch:
    cluster: Cluster
    body: bytes
    count: int
    last: bool  # the final batch of a cluster's resync


_DONE = object()


def _prefetched(batches: Iterator[_Batch], depth: int = 2) -> Iterator[_Batch]:
    """``batches``, produced by a thread up to ``depth`` ahead of the consumer."""
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        queue.put(batch, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            queue.put(exc)

    producer = threading.Thread(target=produce, name="replay-batches", daemon=True)
    producer.start()
    try:
        while True:
            item = queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, _Batch)
            yield item
    finally:
        stop.set()
        producer.join()


class Sender:
    """Builds and posts batches for the inventory's clusters."""

    def __init__(
        self,
        inventory: Inventory,
        transport: Transport,
        *,
        batch_size: int = BATCH_SIZE,
        progress: Progress | None = None,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        if not 1 <= batch_size <= 20_000:
            raise ValueError("batch size must be between 1 and 20,000")
        if in_flight < 1:
            raise ValueError("at least one batch must be in flight")
        self.inventory = inventory
        self.transport = transport
        self.batch_size = batch_size
        self.progress = progress or Progress()
        self.in_flight = in_flight

    def _body(
        self,
        cluster: Cluster,
        states: list[tuple[Workload, int]],
        tm: TimeMap,
        resync: JsonObject | None = None,
    ) -> bytes:
        """A batch of workloads, each at one of its steps, with their pods where they have them."""
        body: JsonObject = {
            "clusterName": cluster.name,
            "workloads": [observation(w, k, tm) for w, k in states],
        }
        pods = [pod for w, k in states for pod in pod_items(w, k, tm, resync=resync is not None)]
        if pods:
            body["pods"] = pods
        if resync is not None:
            body["fullResync"] = resync
        return orjson.dumps(body)

    def _post(self, batch: _Batch) -> None:
        result = self.transport.sync(batch.cluster.id, batch.body)
        self.progress.add(batch.count, result)

    def _chunks(self, items: Iterable[State]) -> Iterator[list[State]]:
        chunk: list[State] = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= self.batch_size:
                yield chunk
                chunk = []
        yield chunk  # possibly empty: the last batch of a resync must be sent anyway

    def _resync_batches(self, points: Mapping[str, tuple[int, TimeMap]]) -> Iterator[_Batch]:
        for trace in self.inventory.traces:
            at_ms, tm = points[trace.cluster.key]
            resync_id = f"{trace.cluster.key}-{at_ms}-{secrets.token_hex(4)}"
            states = ((w, w.index_at(at_ms)) for w in trace.workloads if w.created_ms <= at_ms)
            chunks = self._chunks(states)
            current = next(chunks)
            for following in chunks:
                if not following:
                    break
                resync = {"id": resync_id, "final": False}
                body = self._body(trace.cluster, current, tm, resync)
                yield _Batch(trace.cluster, body, len(current), False)
                current = following
            resync = {"id": resync_id, "final": True}
            yield _Batch(trace.cluster, self._body(trace.cluster, current, tm, resync), len(current), True)

    def resync(self, points: Mapping[str, tuple[int, TimeMap]]) -> None:
        """A full resync of every cluster: trace ``key``'s state at ``points[key] = (trace ms, time map)``.
        The next batches are built while the server applies the current ones, and up to ``in_flight``
        batches are with the server at once (it works on them in parallel, one per sync worker
        process): each workload is in one batch only, so they may be applied in any order — except a
        cluster's final batch, which ends its resync (what none of its batches reported is deleted)
        and so is sent only once every batch before it has been applied."""
        sent: list[tuple[_Batch, Future[JsonObject]]] = []
        with ThreadPoolExecutor(self.in_flight, thread_name_prefix="replay-send") as pool:
            for batch in _prefetched(self._resync_batches(points)):
                if batch.last:
                    self._settle(sent, at_most=0)
                    self._post(batch)
                else:
                    self._settle(sent, at_most=self.in_flight - 1)
                    sent.append((batch, pool.submit(self.transport.sync, batch.cluster.id, batch.body)))
                at = format_trace_time(points[batch.cluster.key][0])
                if batch.last:
                    self.progress.maybe_report(f"{batch.cluster.name} at {at}", force=True)
                else:
                    self.progress.maybe_report(f"resync of {batch.cluster.name} at {at}")
            self._settle(sent, at_most=0)

    def _settle(self, sent: list[tuple[_Batch, Future[JsonObject]]], *, at_most: int) -> None:
        """Wait until at most ``at_most`` of the ``sent`` batches are unanswered, counting the answered
        ones (an error raises here)."""
        while sent:
            answered = [(b, f) for b, f in sent if f.done()]
            if not answered and len(sent) <= at_most:
                return
            if not answered:
                wait([f for _, f in sent], return_when=FIRST_COMPLETED)
                continue
            for entry in answered:
                sent.remove(entry)
                self.progress.add(entry[0].count, entry[1].result())

    def changes(self, trace: Trace, after_ms: int, until_ms: int, tm: TimeMap) -> int:
        """Send the steps of ``trace`` with ``after_ms < at <= until_ms``; returns how many."""
        events = trace.events
        positions = events.window(after_ms, until_ms)
        if not positions:
            return 0
        due: dict[int, list[int]] = {}
        for pos in positions:
            due.setdefault(events.workloads[pos], []).append(events.steps[pos])
        # Round r carries every workload's r-th step of the window: one item per workload per batch.
        for r in range(max(len(ks) for ks in due.values())):
            states = [(trace.workloads[wi], ks[r]) for wi, ks in due.items() if len(ks) > r]
            for chunk in self._chunks(states):
                if chunk:
                    self._post(_Batch(trace.cluster, self._body(trace.cluster, chunk, tm), len(chunk), False))
        return len(positions)


def snapshot(
    inventory: Inventory,
    transport: Transport,
    at_ms: int,
    *,
    wall_ms: int | None = None,
    batch_size: int = BATCH_SIZE,
    log: Callable[[str], None] = print,
) -> Progress:
    """Send the state at trace instant ``at_ms`` (every trace) as a full resync; ``at_ms`` is reported
    as ``wall_ms`` (default: now). Returns the counters."""
    progress = Progress(log=log)
    tm = TimeMap(at_ms, now_ms() if wall_ms is None else wall_ms, 1.0)
    sender = Sender(inventory, transport, batch_size=batch_size, progress=progress)
    sender.resync({t.cluster.key: (at_ms, tm) for t in inventory.traces})
    progress.maybe_report(f"snapshot at {format_trace_time(at_ms)} done", force=True)
    return progress


# ---------------------------------------------------------------------------------------- live


@dataclass(frozen=True, slots=True)
class Timeline:
    """A live replay's mapping: trace ``key`` starts at ``starts[key]`` (trace ms) at wall-clock
    ``wall_ms``, and all run at ``speed``."""

    starts: dict[str, int]
    wall_ms: int
    speed: float

    def time_map(self, key: str) -> TimeMap:
        return TimeMap(self.starts[key], self.wall_ms, self.speed)

    def save(self, path: Path) -> None:
        state = {"starts": self.starts, "wall_ms": self.wall_ms, "speed": self.speed}
        temporary = path.with_suffix(path.suffix + ".tmp")
        write_private(temporary, json.dumps(state, sort_keys=True) + "\n")
        temporary.replace(path)

    @classmethod
    def saved(cls, path: Path, starts: Mapping[str, int], speed: float) -> Timeline | None:
        """The timeline saved in ``path`` if it is the same replay (same traces, starts and speed)."""
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if state["starts"] == dict(starts) and float(state["speed"]) == speed:
                return cls(dict(starts), int(state["wall_ms"]), speed)
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return None


class LiveReplay:
    """Plays the traces at ``speed``, trace ``key`` from ``starts[key]`` (trace ms), for ``span_ms`` of
    trace time (default: to the end of each trace) or until ``stop`` is set.

    With ``state_file``, the timeline (which wall-clock instant the starts correspond to) is kept there,
    and a restarted agent with the same traces, starts and speed resumes it — a full resync of the state
    at its current trace time, then on — instead of starting over.
    """

    def __init__(
        self,
        inventory: Inventory,
        transport: Transport,
        *,
        starts: Mapping[str, int] | int,
        speed: float,
        span_ms: int | None = None,
        tick_s: float = 1.0,
        batch_size: int = BATCH_SIZE,
        state_file: Path | None = None,
        log: Callable[[str], None] = print,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        keys = [t.cluster.key for t in inventory.traces]
        self.starts = dict(starts) if isinstance(starts, Mapping) else dict.fromkeys(keys, starts)
        if sorted(self.starts) != sorted(keys):
            raise ValueError(f"starts must name exactly the traces {keys}")
        self.inventory = inventory
        self.transport = transport
        self.speed = speed
        self.tick_s = tick_s
        self.until = {
            t.cluster.key: max(
                self.starts[t.cluster.key],
                t.end_ms if span_ms is None else min(t.end_ms, self.starts[t.cluster.key] + span_ms),
            )
            for t in inventory.traces
        }
        self.state_file = state_file
        self.log = log
        self.clock = clock
        self.progress = Progress(log=log, every_s=10.0)
        self.sender = Sender(inventory, transport, batch_size=batch_size, progress=self.progress)
        self.stop = threading.Event()
        self.acked: dict[str, int] | None = None  # per trace, the trace time the server has everything up to
        self.resyncs = 0
        self.changes_sent = 0
        self.timeline: Timeline | None = None

    def _timeline(self) -> Timeline:
        if self.state_file is not None:
            saved = Timeline.saved(self.state_file, self.starts, self.speed)
            if saved is not None:
                self.log(f"replay: resuming the timeline saved in {self.state_file}")
                return saved
        timeline = Timeline(self.starts, self.clock(), self.speed)
        if self.state_file is not None:
            timeline.save(self.state_file)
        return timeline

    def trace_now(self, key: str) -> int:
        """Trace ``key``'s current instant: where the clock says, within [start, until]."""
        assert self.timeline is not None
        at = self.timeline.time_map(key).trace_at(self.clock())
        return max(self.starts[key], min(at, self.until[key]))

    def where(self) -> str:
        at = self.acked or self.starts
        return ", ".join(f"{key} {format_trace_time(ms)}" for key, ms in at.items())

    @property
    def finished(self) -> bool:
        return self.acked is not None and all(self.acked[k] >= self.until[k] for k in self.until)

    def step(self, need_resync: bool) -> bool:
        """Bring the server to the current trace time. Returns whether a resync is (still) needed."""
        assert self.timeline is not None
        targets = {key: self.trace_now(key) for key in self.starts}
        outages = self.transport.outages
        try:
            if self.acked is not None:
                for trace in self.inventory.traces:
                    key = trace.cluster.key
                    tm = self.timeline.time_map(key)
                    self.changes_sent += self.sender.changes(trace, self.acked[key], targets[key], tm)
            if need_resync:
                at = ", ".join(f"{key} {format_trace_time(ms)}" for key, ms in targets.items())
                self.log(f"replay: full resync at trace time {at}")
                self.sender.resync({key: (ms, self.timeline.time_map(key)) for key, ms in targets.items()})
                self.resyncs += 1
            self.acked = targets
        except ServerUnavailable as exc:
            self.log(f"replay: server unavailable ({exc}); will resync when it answers")
            return True
        if self.transport.outages > outages:
            self.log("replay: the server went away during this step; resyncing")
            return True
        return False

    def run(self) -> None:
        self.timeline = self._timeline()
        starts = ", ".join(f"{key} {format_trace_time(ms)}" for key, ms in self.starts.items())
        self.log(
            f"replay: live at {self.speed:g}x (a trace minute every {60 / self.speed:.3g} s) from trace time "
            f"{starts}"
        )
        need_resync = True
        next_tick = time.monotonic()
        while not self.stop.is_set():
            need_resync = self.step(need_resync)
            self.progress.maybe_report(f"live at {self.where()}, {self.changes_sent:,} changes")
            if not need_resync and self.finished:
                self.progress.maybe_report(f"finished at {self.where()}", force=True)
                self.log(
                    "replay: the traces are played out; the inventory stays as it is (to play them again, "
                    "start over with an empty store)"
                )
                return
            next_tick = max(next_tick + self.tick_s, time.monotonic())
            self.stop.wait(max(0.0, next_tick - time.monotonic()))
