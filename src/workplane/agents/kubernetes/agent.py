"""The running agent: discovery, a list + watch per kind, and batches to the sync protocol.

**List + watch.** Each served kind is listed (in pages) and then watched from the list's
``resourceVersion``, with bookmarks, so a watch that ends (the API server closes streams every few
minutes) resumes where it was. A watch refused with ``410 Gone`` (the version has been compacted away)
relists the kind: what the new list lacks is taken for deleted, and the next batch is a full resync.

**Batches.** Once something changed, the workloads whose objects or pods changed are worked out again
and those whose record changed are sent: at once, unless the last round began less than
``interval_s`` ago (then when it is that old), and never while the last round's batches are still on
their way, so under a stream of changes each batch carries what came during the round before. The
first batch after a start, after any relist, and after the server was unreachable is a full resync
(the protocol's ``fullResync``): every workload the cluster has now, so the control plane drops what
was deleted while the agent was not looking.

**Revisions** are observation times in milliseconds (never lower than the last one sent for the
workload). A workload is made of several objects — its owner and its pods — whose resourceVersions come
from separate watch streams that are not ordered with one another, so none of them orders the
workload's states; the agent's own observation time does, and it keeps doing so across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2
import orjson
from lightkube import AsyncClient
from lightkube.generic_resource import GenericGlobalResource, GenericNamespacedResource, create_api_info

from workplane.agents.client import ServerUnavailable, SyncError
from workplane.agents.kubernetes.cluster import ClusterState
from workplane.agents.kubernetes.kinds import (
    CORE,
    CORE_KINDS,
    QUEUE_KIND,
    Served,
    Wanted,
    group_versions,
    owner_kinds,
    served_in,
)
from workplane.agents.kubernetes.objects import Event, Owner, Pod
from workplane.agents.kubernetes.utilisation import (
    UtilisationSource,
    UtilisationUnavailable,
    workload_samples,
)
from workplane.agents.kubernetes.workloads import Labels, build_item, pod_item, pod_pool, workload_verdict
from workplane.domain.phases import Phase
from workplane.domain.timefmt import format_ms, now_ms

JsonObject = dict[str, Any]
log = logging.getLogger("workplane.agent.kubernetes")


# A workload's item (None when only its pods changed) and the items of its pods that changed.
Unit = tuple[JsonObject | None, list[JsonObject]]
MAX_PODS_PER_BATCH = 40_000  # the protocol takes 50,000
MAX_EVENTS_PER_BATCH = 10_000
IDLE_ROUND_S = 1.0


Chunk = tuple[list[JsonObject], list[JsonObject]]


def _chunks(units: Iterable[Unit], batch_size: int) -> Iterator[Chunk]:
    """Batches of at most ``batch_size`` workloads, each yielded as soon as it is full (a resync of
    a large cluster is never held whole); a workload's pods travel in its batch."""
    workloads: list[JsonObject] = []
    held: list[JsonObject] = []
    for workload, pods in units:
        if len(workloads) >= batch_size or (
            len(held) + len(pods) > MAX_PODS_PER_BATCH and (workloads or held)
        ):
            yield workloads, held
            workloads, held = [], []
        if workload is not None:
            workloads.append(workload)
        held.extend(pods)
    yield workloads, held


class Sent:
    """The items last sent, by id, kept as their JSON bytes: a dict per pod of a 100,000-pod cluster
    would hold several times the memory. A deletion is sent as the last item plus ``deletedAt``."""

    def __init__(self) -> None:
        self._items: dict[str, bytes] = {}

    def put(self, key: str, item: JsonObject) -> bool:
        """Remember ``item``; whether it is the one already sent."""
        data = orjson.dumps(item)
        if self._items.get(key) == data:
            return True
        # A copy of exactly its size: orjson's own result keeps the larger buffer it was written into
        # (about 4.7 kB for a 500-byte pod item).
        self._items[key] = bytes(memoryview(data))
        return False

    def get(self, key: str) -> JsonObject | None:
        data = self._items.get(key)
        return orjson.loads(data) if data is not None else None

    def pop(self, key: str) -> JsonObject | None:
        data = self._items.pop(key, None)
        return orjson.loads(data) if data is not None else None

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)


# What a pod's last item was made of: the pod, its workload, its node's pool and its revision
# (``pod_item``).
PodSent = tuple[Pod, str, str | None, str | None]


class SentPods:
    """Per pod reported, what its last item was made of, not the item: the pod object is the one the
    cluster state holds anyway, so a pod costs a small tuple here instead of its item's JSON (about
    570 bytes; 57 MB at 100,000 pods). The item is made again from these when it is needed (a
    deletion is the last item plus ``deletedAt``). Pods are replaced, never changed in place, so an
    equal tuple is an equal item."""

    def __init__(self) -> None:
        self._items: dict[str, PodSent] = {}

    def put(self, key: str, sent: PodSent) -> bool:
        """Remember ``sent``; whether it is what was already sent."""
        if self._items.get(key) == sent:
            return True
        self._items[key] = sent
        return False

    def pop(self, key: str) -> PodSent | None:
        return self._items.pop(key, None)


class Transport(Protocol):
    outages: int

    def sync(self, cluster_id: str, body: bytes | JsonObject) -> JsonObject: ...


@dataclass(frozen=True, slots=True)
class AgentConfig:
    cluster_id: str
    cluster_name: str
    labels: Labels = field(default_factory=Labels)
    interval_s: float = 0.25  # the least time from one round's start to the next one's
    batch_size: int = 2000
    in_flight: int = 2  # batches on their way to the server at once
    page_size: int = 500
    watch_timeout_s: int = 300
    retry_s: float = 1.0
    utilisation: UtilisationSource | None = None  # GPU samples from DCGM's exporter or Prometheus


def _is_gone(exc: BaseException) -> bool:
    """A watch's ``410 Gone``: as an ERROR event in the stream, or as the answer itself."""
    status = getattr(exc, "status", None)
    if getattr(status, "code", None) == 410:
        return True
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) == 410


def _resource_class(served: Served) -> type[Any]:
    # Every kind is read as a plain mapping (lightkube's generic resources): the agent keeps only a few
    # fields of each object, so decoding into the typed models would be work thrown away.
    base = GenericNamespacedResource if served.namespaced else GenericGlobalResource
    verbs = ["list", "watch", "global_list", "global_watch"]
    info = create_api_info(served.group, served.version, served.kind, served.plural, verbs=verbs)
    return type(served.kind, (base,), {"_api_info": info})


class KubernetesAgent:
    def __init__(
        self,
        kube: AsyncClient,
        transport: Transport,
        config: AgentConfig,
        *,
        say: Callable[[str], None] = print,
    ) -> None:
        self.kube = kube
        self.transport = transport
        self.config = config
        self.say = say
        self.state = ClusterState()
        self.served: list[Served] = []
        self.absent: list[Wanted] = []
        self._listed: set[str] = set()
        self._resync = True
        self._reported = Sent()  # workload id -> the item last sent
        self._phases: dict[str, tuple[str, str]] = {}  # workload id -> (phase, since)
        self._revisions: dict[str, int] = {}
        self._pods_reported = SentPods()  # pod uid -> what the item last sent was made of
        self._workload_pods: dict[str, set[str]] = {}  # workload id -> pods reported under it
        self._seen_events: dict[str, Event] = {}
        self._dirty_events: set[str] = set()  # events to report once their workload is reported
        self._pod_labels = (config.labels.node_pool,)  # the only pod label a record is made of
        self._all_listed = asyncio.Event()
        self._changed = asyncio.Event()  # a watch or list brought something since the last round
        self.resyncs = 0

    # -- discovery -------------------------------------------------------------------------------

    async def _get(self, path: str) -> JsonObject:
        # lightkube has no discovery call; its HTTP client carries the kubeconfig's server and auth.
        http: httpx2.AsyncClient = self.kube._client._client
        answer = await http.get(path)
        answer.raise_for_status()
        result: JsonObject = orjson.loads(answer.content)
        return result

    async def discover(self) -> None:
        """Which wanted kinds the cluster serves (``/api/v1``, ``/apis``, ``/apis/<group>/<version>``)."""
        core = served_in(await self._get("/api/v1"), CORE, "v1")
        served = [core[w.kind] for w in CORE_KINDS]
        groups = group_versions(await self._get("/apis"))
        lists: dict[tuple[str, str], dict[str, Served]] = {}
        absent: list[Wanted] = []
        for wanted in (*owner_kinds(), QUEUE_KIND):
            found = None
            for version in groups.get(wanted.group, []):
                key = (wanted.group, version)
                if key not in lists:
                    try:
                        lists[key] = served_in(await self._get(f"/apis/{wanted.group}/{version}"), *key)
                    except httpx2.HTTPStatusError:
                        lists[key] = {}  # a group version announced but not answering: not served
                found = lists[key].get(wanted.kind)
                if found is not None:
                    break
            if found is None:
                absent.append(wanted)
            else:
                served.append(found)
        self.served, self.absent = served, absent
        self.state.watched = {(s.kind, s.group) for s in served if s.group != CORE}

    # -- lists and watches -----------------------------------------------------------------------

    def _apply(self, served: Served, event: str, obj: JsonObject) -> None:
        meta = obj.get("metadata") or {}
        kind = served.kind
        if served.group == CORE and kind == "Pod":
            if event == "DELETED":
                self.state.remove_pod(str(meta.get("uid")))
            else:
                self.state.put_pod(Pod.from_object(obj, keep_labels=self._pod_labels))
        elif served.group == CORE and kind == "Event":
            if event == "DELETED":  # expired: what was reported stays in the workload's events
                self._seen_events.pop(str(meta.get("uid")), None)
            else:
                seen = Event.from_object(obj)
                self._seen_events[seen.uid] = seen
                self._dirty_events.add(seen.uid)
        elif served.group == CORE and kind == "Namespace":
            name = str(meta.get("name"))
            labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
            if event == "DELETED":
                self.state.namespaces.pop(name, None)
            elif self.state.namespaces.get(name) != labels:
                self.state.namespaces[name] = labels
                self._touch(lambda node: node.namespace == name)
        elif served.group == CORE and kind == "Node":
            name = str(meta.get("name"))
            pool = (
                None if event == "DELETED" else (meta.get("labels") or {}).get(self.config.labels.node_pool)
            )
            if self.state.node_pools.get(name, "") != pool:
                self.state.node_pools[name] = pool
                self._touch_pods(lambda pod: pod.node == name)
        elif (kind, served.group) == (QUEUE_KIND.kind, QUEUE_KIND.group):
            name = str(meta.get("name"))
            parent = None if event == "DELETED" else (obj.get("spec") or {}).get("parentQueue")
            if self.state.queues.get(name, "") != parent:
                self.state.queues[name] = parent
                self._touch(lambda _node: True)
        elif event == "DELETED":
            self.state.remove_owner(str(meta.get("uid")))
        else:
            self.state.put_owner(Owner.from_object(obj, kind, served.group))

    def _touch(self, which: Callable[[Owner | Pod], bool]) -> None:
        """Mark the workloads whose object matches ``which`` as changed (a namespace's or queue's
        labels changed: rare, so a scan is fine)."""
        for workload_id in list(self._reported):
            node = self.state.workload_node(workload_id)
            if node is not None and which(node):
                self.state.dirty.add(workload_id)

    def _touch_pods(self, which: Callable[[Pod], bool]) -> None:
        if not self._reported:
            # Nothing reported yet (the first lists): the first full resync reads every pod's pool
            # then. A scan of every pod per node listed after them was quadratic.
            return
        for uid, pod in self.state.pods.items():
            if which(pod):
                workload_id = self.state.pod_workload.get(uid)
                if workload_id is not None:
                    self.state.dirty.add(workload_id)

    async def _pages(self, served: Served, resource: type[Any]) -> AsyncIterator[tuple[str, list[Any]]]:
        """The list's pages, each with the list's resourceVersion. The next page is asked for before
        this one is handed over, so the API server prepares it while the agent reads this one (as
        lightkube's own ``list()`` does it, the two would wait on each other, page after page)."""
        generic = self.kube._client
        request = generic.prepare_request(
            "list",
            res=resource,
            namespace="*" if served.namespaced else None,
            params={"limit": self.config.page_size},
        )

        async def page() -> tuple[bool, str, list[Any]]:
            http: httpx2.AsyncClient = generic._client
            answer = await http.send(generic.build_adapter_request(request))
            more, version, items = generic.handle_response("list", answer, request)
            return more, str(version or ""), items

        pending = asyncio.ensure_future(page())
        try:
            while True:
                more, version, items = await pending
                if more:  # the continue token is in the request now
                    pending = asyncio.ensure_future(page())
                    await asyncio.sleep(0)  # lets it send the request
                yield version, items
                if not more:
                    return
        finally:
            pending.cancel()

    async def _list(self, served: Served, resource: type[Any]) -> str:
        seen: set[str] = set()
        version = ""
        by_name = served.kind in ("Namespace", "Node")
        async for page_version, items in self._pages(served, resource):
            version = page_version
            for obj in items:
                meta = obj.get("metadata") or {}
                seen.add(str(meta.get("name") if by_name else meta.get("uid")))
                self._apply(served, "ADDED", obj)
        self._forget_missing(served, seen)
        return version

    def _forget_missing(self, served: Served, seen: set[str]) -> None:
        """After a relist: what the list no longer has was deleted while the watch was not looking."""
        state = self.state
        if served.group == CORE and served.kind == "Pod":
            for uid in [u for u in state.pods if u not in seen]:
                state.remove_pod(uid)
        elif served.group == CORE and served.kind == "Event":
            for uid in [u for u in self._seen_events if u not in seen]:
                del self._seen_events[uid]
        elif served.group == CORE and served.kind in ("Namespace", "Node"):
            held = state.namespaces if served.kind == "Namespace" else state.node_pools
            for name in [n for n in held if n not in seen]:
                self._apply(served, "DELETED", {"metadata": {"name": name}})
        elif (served.kind, served.group) != (QUEUE_KIND.kind, QUEUE_KIND.group):
            gone = [
                uid
                for uid, owner in state.owners.items()
                if (owner.kind, owner.group) == (served.kind, served.group) and uid not in seen
            ]
            for uid in gone:
                state.remove_owner(uid)

    async def _events(
        self, resource: type[Any], served: Served, version: str
    ) -> AsyncIterator[tuple[str, Any]]:
        # lightkube's watch() does not ask for bookmarks; its request builder does, with the same
        # parameters plus allowWatchBookmarks (docs/decisions/0015-kubernetes-agent.md).
        generic = self.kube._client
        request = generic.prepare_request(
            "list",
            res=resource,
            namespace="*" if served.namespaced else None,
            watch=True,
            params={
                "resourceVersion": version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": self.config.watch_timeout_s,
            },
        )
        async for event in generic.watch(request):
            yield event

    async def _follow(self, served: Served) -> None:
        """List, then watch from the list's version; relist on 410 Gone; resume after other errors."""
        resource = _resource_class(served)
        name = f"{served.kind}.{served.group}" if served.group else served.kind
        while True:
            try:
                version = await self._list(served, resource)
            except (httpx2.HTTPError, OSError) as exc:
                self.say(f"kubernetes agent: listing {name} failed ({exc}); retrying")
                await asyncio.sleep(self.config.retry_s)
                continue
            if name in self._listed:
                self._resync = True  # a relist: report everything again, so deletions missed show
            self._changed.set()
            self._listed.add(name)
            if len(self._listed) >= len(self.served):
                self._all_listed.set()  # the first full resync need not wait for the next round
            while True:
                try:
                    async for event_type, obj in self._events(resource, served, version):
                        meta = obj.get("metadata") or {}
                        version = str(meta.get("resourceVersion") or version)
                        if event_type in ("ADDED", "MODIFIED", "DELETED"):
                            self._apply(served, event_type, obj)
                            self._changed.set()
                except (httpx2.HTTPError, OSError) as exc:
                    if _is_gone(exc):
                        self.say(f"kubernetes agent: {name}: watch expired (410 Gone), relisting")
                        break
                    self.say(f"kubernetes agent: {name}: watch ended ({type(exc).__name__}: {exc}); resuming")
                    await asyncio.sleep(self.config.retry_s)

    # -- batches ---------------------------------------------------------------------------------

    def _revision(self, workload_id: str) -> int:
        revision = max(now_ms(), self._revisions.get(workload_id, 0) + 1)
        self._revisions[workload_id] = revision
        return revision

    def _item(self, workload_id: str) -> JsonObject | None:
        state = self.state
        node = state.workload_node(workload_id)
        grouping = state.grouping(node) if node is not None else None
        if grouping is None:
            return None
        pods = state.workload_pod_list(workload_id)
        verdict = workload_verdict(grouping, pods)
        known = self._phases.get(workload_id)
        if known is not None and known[0] == verdict.phase.value:
            since = known[1]
        else:
            since = verdict.since or _first_sight(verdict.phase, grouping.workload, pods, known is None)
            self._phases[workload_id] = (verdict.phase.value, since)
        return build_item(
            self.config.cluster_id,
            state,
            grouping,
            pods,
            verdict,
            revision=0,
            phase_since=since,
            labels=self.config.labels,
        )

    def _pod_changes(self, workload_id: str, *, everything: bool = False) -> list[JsonObject]:
        """Items for the pods of a reported workload that changed (all of them when ``everything``),
        and the deletions of those it no longer has."""
        items = []
        now_text = _now_text()
        current = {pod.uid: pod for pod in self.state.workload_pod_list(workload_id)}
        for uid in self._workload_pods.get(workload_id, set()) - current.keys():
            last = self._pods_reported.pop(uid)
            if last is not None and not everything:
                items.append(self._pod_gone(uid, last, now_text))
        for uid, pod in current.items():
            sent = (pod, workload_id, pod_pool(self.state, pod), self.state.revision_of(pod))
            if self._pods_reported.put(uid, sent) and not everything:
                continue
            items.append({**pod_item(*sent, now_text), "revision": self._revision(uid)})
        self._workload_pods[workload_id] = set(current)
        return items

    def event_items(self, *, everything: bool = False) -> list[JsonObject]:
        """Items for the events whose workload has been reported (at most MAX_EVENTS_PER_BATCH; the
        rest wait for the next round), all of them in a full resync."""
        if everything:
            self._dirty_events |= set(self._seen_events)
        items: list[JsonObject] = []
        for uid in list(self._dirty_events):
            if len(items) >= MAX_EVENTS_PER_BATCH:
                break
            seen = self._seen_events.get(uid)
            if seen is None:
                self._dirty_events.discard(uid)
                continue
            workload_id = self._workload_of(seen.involved_uid)
            if workload_id is None or workload_id not in self._reported:
                known = seen.involved_uid in self.state.pods or seen.involved_uid in self.state.owners
                if not known:  # about a node, a service, …: no workload's event
                    self._dirty_events.discard(uid)
                continue  # its pod or workload is not reported yet: next round
            self._dirty_events.discard(uid)
            items.append(
                {
                    "id": seen.uid,
                    "workloadId": workload_id,
                    "revision": seen.revision,
                    "createdAt": seen.at or _now_text(),
                    "type": seen.type,
                    "message": seen.message,
                    "reason": seen.reason,
                    "source": seen.source,
                    "involvedObject": {
                        "uid": seen.involved_uid,
                        "kind": seen.involved_kind,
                        "name": seen.involved_name,
                        "namespace": seen.namespace,
                    },
                }
            )
        return items

    def _workload_of(self, uid: str) -> str | None:
        """The workload a pod or owner belongs to."""
        workload_id = self.state.pod_workload.get(uid)
        if workload_id is not None:
            return workload_id
        owner = self.state.owners.get(uid)
        grouping = self.state.grouping(owner) if owner is not None else None
        return grouping.workload.uid if grouping is not None else None

    def _forget(self, workload_id: str) -> list[JsonObject]:
        """Drop a workload that is gone; the deletions of the pods reported under it."""
        self._reported.pop(workload_id)
        self._phases.pop(workload_id, None)
        gone = []
        for uid in self._workload_pods.pop(workload_id, set()):
            last = self._pods_reported.pop(uid)
            if last is not None:
                gone.append(self._pod_gone(uid, last, _now_text()))
        return gone

    def _pod_gone(self, uid: str, last: PodSent, now_text: str) -> JsonObject:
        """A pod's deletion: its last item, a new revision and ``deletedAt``."""
        return {**pod_item(*last, now_text), "revision": self._revision(uid), "deletedAt": now_text}

    def changes(self) -> list[Unit]:
        """The workloads that changed since the last batch, with their pods (deletions included)."""
        self.state.regroup()
        dirty, self.state.dirty = self.state.dirty, set()
        units: list[Unit] = []
        for workload_id in dirty:
            item = self._item(workload_id)
            if item is None:
                last = self._reported.get(workload_id)
                if last is not None:
                    gone = {**last, "revision": self._revision(workload_id), "deletedAt": _now_text()}
                    units.append((gone, self._forget(workload_id)))
                continue
            pods = self._pod_changes(workload_id)
            if self._reported.put(workload_id, item):  # unchanged
                if pods:
                    units.append((None, pods))
                continue
            units.append(({**item, "revision": self._revision(workload_id)}, pods))
        return units

    def everything(self) -> Iterator[Unit]:
        """Every workload the cluster has now, with its pods (a full resync), one at a time."""
        live = self.state.live_workloads()
        self.state.dirty = set()
        for workload_id in [w for w in self._reported if w not in live]:
            self._forget(workload_id)
        for workload_id in live:
            item = self._item(workload_id)
            if item is not None:
                self._reported.put(workload_id, item)
                pods = self._pod_changes(workload_id, everything=True)
                yield {**item, "revision": self._revision(workload_id)}, pods

    async def _send(self, body: JsonObject) -> JsonObject:
        return await asyncio.to_thread(self.transport.sync, self.config.cluster_id, orjson.dumps(body))

    def _body(self, chunk: Chunk, resync_id: str | None, *, final: bool) -> JsonObject:
        workloads, pods = chunk
        body: JsonObject = {"clusterName": self.config.cluster_name, "workloads": workloads}
        if pods:
            body["pods"] = pods
        if resync_id is not None:
            body["fullResync"] = {"id": resync_id, "final": final}
        return body

    async def flush(self) -> None:
        """One round: a full resync when one is due, else the changes."""
        if len(self._listed) < len(self.served):
            return  # the first lists are not all in yet
        outages = self.transport.outages
        resync, self._resync = self._resync, False
        units: Iterable[Unit] = self.everything() if resync else self.changes()
        if not resync:
            units = list(units)
            if not units and not self._dirty_events:
                return
        started = time.monotonic()
        resync_id = f"k8s-{int(time.time())}-{secrets.token_hex(4)}"
        sent = 0
        in_flight: list[asyncio.Future[JsonObject]] = []
        try:
            # Each batch is sent once the next is built: the last one, which ends a resync and carries
            # the events (they name workloads of the earlier ones), is known only then, and is sent
            # once every earlier one has been answered. Up to ``config.in_flight`` batches are on
            # their way while the next is built: the server plans batches in as many worker
            # processes at once (a batch names each workload once, so the ones before the last are
            # independent of one another), and writing them was what a large resync waited for.
            held: Chunk | None = None
            for chunk in _chunks(units, self.config.batch_size):
                if held is not None:
                    while len(in_flight) >= max(1, self.config.in_flight):
                        await in_flight.pop(0)
                    in_flight.append(
                        asyncio.ensure_future(
                            self._send(self._body(held, resync_id if resync else None, final=False))
                        )
                    )
                    await asyncio.sleep(0)  # lets it start before the next batch is built
                    sent += len(held[0])
                held = chunk
            while in_flight:
                await in_flight.pop(0)
            assert held is not None  # _chunks yields at least one
            body = self._body(held, resync_id if resync else None, final=True)
            events = self.event_items(everything=resync)
            if events:
                body["events"] = events
            if body["workloads"] or body.get("pods") or events or resync:
                await self._send(body)
            sent += len(held[0])
        except ServerUnavailable as exc:
            self.say(f"kubernetes agent: server unavailable ({exc}); a full resync follows")
            self._resync = True
            return
        except SyncError as exc:
            # The batch was refused as a whole: say why, and report everything again next round.
            self.say(f"kubernetes agent: batch refused: {exc}")
            self._resync = True
            await asyncio.sleep(self.config.retry_s)
            return
        finally:
            if in_flight:
                # A batch failed, or building one did, while others were on their way: let those end
                # first (their outcome no longer matters: a full resync follows).
                await asyncio.wait(in_flight)
                for future in in_flight:
                    if not future.cancelled():
                        future.exception()  # retrieved: it is superseded by the one handled
        if self.transport.outages != outages:
            self._resync = True  # the server may have restarted on another store
        if resync:
            self.resyncs += 1
            self.say(
                f"kubernetes agent: full resync {self.resyncs}: {sent:,} workloads "
                f"in {time.monotonic() - started:.1f} s"
            )

    async def forward_utilisation(self) -> None:
        """When due, the GPU readings of the workloads already reported, as one batch of samples."""
        source = self.config.utilisation
        if source is None or not source.due():
            return
        try:
            readings = await source.read()
        except UtilisationUnavailable as exc:
            if not source.failing:
                self.say(f"kubernetes agent: no GPU utilisation: {exc}")
            source.failing = True
            return
        source.failing = False
        pods = {
            (pod.namespace, pod.name): workload
            for uid, workload in self.state.pod_workload.items()
            if workload in self._reported and (pod := self.state.pods.get(uid)) is not None
        }
        samples = workload_samples(readings, pods, now_ms())
        if samples:
            try:
                await self._send({"clusterName": self.config.cluster_name, "samples": samples})
            except (ServerUnavailable, SyncError) as exc:
                self.say(f"kubernetes agent: GPU samples not sent: {exc}")

    async def run(self, *, rounds: int | None = None) -> None:
        """Discover, follow every served kind, and send the changes as they come (forever, or for
        ``rounds`` rounds)."""
        await self.discover()
        kinds = ", ".join(s.kind for s in self.served)
        absent = ", ".join(f"{w.kind}.{w.group}" for w in self.absent) or "none"
        self.say(f"kubernetes agent: watching {kinds}; not served by this cluster (skipped): {absent}")
        tasks = [asyncio.create_task(self._follow(s), name=f"watch {s.kind}") for s in self.served]
        try:
            done = 0
            last_round = time.monotonic()
            # Even with nothing changed, a round at least this often: it forwards the GPU readings
            # when due and notices a watch that failed.
            idle_s = max(self.config.interval_s, IDLE_ROUND_S)
            while rounds is None or done < rounds:
                if self.resyncs == 0 and not self._all_listed.is_set():
                    # Before the first resync: a round as soon as the lists are in.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._all_listed.wait(), idle_s)
                else:
                    # A round as soon as something changed: waiting for a fixed period would add half
                    # of it to every change's trip on average. At most one round per interval_s
                    # (from the start of the last one, so the time a round took is not added to a
                    # change's wait): under a stream of changes the batches stay large, and the
                    # server is not sent a request per change.
                    if not (self._resync or self._changed.is_set()):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), idle_s)
                    await asyncio.sleep(max(0.0, last_round + self.config.interval_s - time.monotonic()))
                self._changed.clear()
                last_round = time.monotonic()
                for task in tasks:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                await self.flush()
                await self.forward_utilisation()
                done += 1
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _first_sight(phase: Phase, node: Owner | Pod, pods: list[Pod], first: bool) -> str:
    """When a phase began, as far as the objects tell: a running workload's first pod start, a
    pending or creating one's creation; the agent's clock otherwise."""
    if first:
        if phase == Phase.RUNNING:
            started = [p.started_at for p in pods if p.started_at is not None]
            if started:
                return min(started)
        created = node.created_at
        if phase in (Phase.PENDING, Phase.CREATING, Phase.INITIALIZING) and created is not None:
            return created
    return _now_text()


def _now_text() -> str:
    return format_ms(now_ms()) or ""
