"""A Kubernetes API server of the test suite's own, speaking the real HTTP protocol on 127.0.0.1.

No real kube-apiserver can be run on the machines these tests run on (none is packaged for Debian,
PyPI or npm; kind and k3s need a container engine). The agent is therefore tested, unmodified, against
this server, which answers the requests its client library makes exactly as the API server does:

- discovery: ``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>/<version>`` (only the groups and kinds
  the test installs: a CRD not installed is absent here as it would be there);
- lists with ``resourceVersion`` in the list metadata, paged by ``limit`` / ``continue``;
- watches (``?watch=true&resourceVersion=N``): chunked streams of newline-delimited JSON events
  ADDED / MODIFIED / DELETED, BOOKMARK when ``allowWatchBookmarks=true``, closed after
  ``timeoutSeconds``; a version older than the compacted history is answered with an ERROR event
  carrying a ``410`` Status (``reason: Expired``), as the API server does;
- bearer-token authentication (401 with a Status otherwise).

One resourceVersion counter orders every change of every kind, as etcd's revision does. The test
changes the cluster through ``create`` / ``update`` / ``delete``; ``compact`` forgets the history (so
watches from before it get 410) and ``drop_watches`` ends every open watch stream.
"""

from __future__ import annotations

import bisect
import copy
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

JsonObject = dict[str, Any]
BOOKMARK_EVERY_S = 0.3
WAIT_STEP_S = 0.05


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


CORE = (
    Kind("", "v1", "Pod", "pods"),
    Kind("", "v1", "Namespace", "namespaces", namespaced=False),
    Kind("", "v1", "Node", "nodes", namespaced=False),
    Kind("", "v1", "Event", "events"),
)
BUILTIN = (
    *CORE,
    Kind("apps", "v1", "Deployment", "deployments"),
    Kind("apps", "v1", "ReplicaSet", "replicasets"),
    Kind("apps", "v1", "StatefulSet", "statefulsets"),
    Kind("batch", "v1", "Job", "jobs"),
    Kind("batch", "v1", "CronJob", "cronjobs"),
)


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> JsonObject:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeCluster:
    def __init__(self, kinds: tuple[Kind, ...] = BUILTIN, token: str | None = None) -> None:
        self.kinds = {(k.group, k.plural): k for k in kinds}
        self.by_kind = {(k.group, k.kind): k for k in kinds}
        self.token = token or secrets.token_hex(16)
        mutex = threading.RLock()
        self._lock = threading.Condition(mutex)
        # Per kind, what its watches wait on: a change wakes only the watches of its own kind (a
        # benchmark's 1,000 pod changes a second would otherwise wake every kind's watch each time).
        self._changed = {key: threading.Condition(mutex) for key in self.kinds}
        self._rv = 100
        self._objects: dict[tuple[str, str], dict[tuple[str, str], JsonObject]] = {
            key: {} for key in self.kinds
        }
        # Per kind, its changes in version order: a watch finds its own kind's changes after a version
        # by bisection instead of scanning every kind's history (benchmarks stream 1,000 changes a
        # second to ten watches).
        self._history: dict[tuple[str, str], list[tuple[int, str, JsonObject]]] = {
            key: [] for key in self.kinds
        }
        self._compacted = 0
        self._epoch = 0
        self._frozen = False
        self._listings: dict[tuple[str, str, str | None], tuple[int, list[JsonObject]]] = {}
        self.url = ""
        self.requests: list[str] = []  # "GET /api/v1/pods?watch=true…" in order, for assertions
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the cluster's objects ------------------------------------------------------------------

    def _kind_of(self, obj: JsonObject) -> Kind:
        group = obj["apiVersion"].rpartition("/")[0]
        return self.by_kind[(group, obj["kind"])]

    def _record(self, kind: Kind, event: str, obj: JsonObject) -> None:
        key = (kind.group, kind.plural)
        # The object as stored, not a copy: stored objects are never changed in place (an update or a
        # deletion stores a new one, and callers get copies), so the history may share them.
        self._history[key].append((self._rv, event, obj))
        self._changed[key].notify_all()

    def create(self, obj: JsonObject) -> JsonObject:
        with self._lock:
            kind = self._kind_of(obj)
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_text())
            if kind.namespaced:
                meta.setdefault("namespace", "default")
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[(kind.group, kind.plural)][(meta.get("namespace", ""), meta["name"])] = obj
            self._record(kind, "ADDED", obj)
            return copy.deepcopy(obj)

    def load(self, objects: list[JsonObject]) -> None:
        """Add many objects at once, as a cluster that existed before anyone watched it: one new
        version for them all and no watch history (benchmarks build clusters of 100,000 pods this way;
        the objects are kept as given, not copied)."""
        with self._lock:
            self._rv += 1
            for obj in objects:
                kind = self._kind_of(obj)
                meta = obj.setdefault("metadata", {})
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now_text())
                meta["resourceVersion"] = str(self._rv)
                self._objects[(kind.group, kind.plural)][(meta.get("namespace", ""), meta["name"])] = obj
            self._compacted = self._rv

    def get(self, api_version: str, kind_name: str, name: str, namespace: str = "default") -> JsonObject:
        kind = self.by_kind[(api_version.rpartition("/")[0], kind_name)]
        with self._lock:
            key = (namespace if kind.namespaced else "", name)
            return copy.deepcopy(self._objects[(kind.group, kind.plural)][key])

    def update(self, obj: JsonObject) -> JsonObject:
        with self._lock:
            kind = self._kind_of(obj)
            obj = copy.deepcopy(obj)
            meta = obj["metadata"]
            store = self._objects[(kind.group, kind.plural)]
            key = (meta.get("namespace", "") if kind.namespaced else "", meta["name"])
            assert key in store, f"no {kind.kind} {key}"
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            store[key] = obj
            self._record(kind, "MODIFIED", obj)
            return copy.deepcopy(obj)

    def delete(self, api_version: str, kind_name: str, name: str, namespace: str = "default") -> None:
        kind = self.by_kind[(api_version.rpartition("/")[0], kind_name)]
        with self._lock:
            key = (namespace if kind.namespaced else "", name)
            obj = self._objects[(kind.group, kind.plural)].pop(key)
            self._rv += 1
            # A new object, not the stored one changed: a list page being written may still hold it.
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self._rv)}}
            self._record(kind, "DELETED", obj)

    def compact(self) -> None:
        """Forget the history so far: a watch from an older version is answered 410 Gone."""
        with self._lock:
            for changes in self._history.values():
                changes.clear()
            self._compacted = self._rv

    def freeze(self, frozen: bool = True) -> None:
        """While frozen, open watches deliver nothing (no events, no bookmarks): changes made meanwhile
        are missed by a watcher whose stream is then dropped and compacted away."""
        with self._lock:
            self._frozen = frozen
            self._wake_all()

    def drop_watches(self) -> None:
        """End every open watch stream (as an API server restart or a load balancer would)."""
        with self._lock:
            self._epoch += 1
            self._wake_all()

    def _wake_all(self) -> None:
        self._lock.notify_all()
        for changed in self._changed.values():
            changed.notify_all()

    # -- HTTP -----------------------------------------------------------------------------------

    def start(self) -> str:
        cluster = self

        class Handler(_Handler):
            fake = cluster

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self.drop_watches()
            self._server.shutdown()
            self._server.server_close()

    def kubeconfig(self) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "agent", "user": {"token": self.token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "agent"}}],
                "current-context": "fake",
            }
        )

    # -- answers --------------------------------------------------------------------------------

    def discovery(self, parts: list[str]) -> JsonObject | None:
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if parts == ["apis"]:
            groups: dict[str, list[str]] = {}
            for kind in self.kinds.values():
                if kind.group and kind.version not in groups.setdefault(kind.group, []):
                    groups[kind.group].append(kind.version)
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": name,
                        "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
                        "preferredVersion": {"groupVersion": f"{name}/{versions[0]}", "version": versions[0]},
                    }
                    for name, versions in groups.items()
                ],
            }
        if parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
            resources = [k for k in self.kinds.values() if (k.group, k.version) == (group, version)]
            if not resources:
                return None
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            listed: list[JsonObject] = []
            for k in resources:
                listed.append(
                    {
                        "name": k.plural,
                        "singularName": k.kind.lower(),
                        "namespaced": k.namespaced,
                        "kind": k.kind,
                        "verbs": verbs,
                    }
                )
                listed.append(
                    {
                        "name": f"{k.plural}/status",
                        "singularName": "",
                        "namespaced": k.namespaced,
                        "kind": k.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": listed,
            }
        return None

    def collection(self, parts: list[str]) -> tuple[Kind, str | None] | None:
        """(kind, namespace or None for all) of a collection path, or None."""
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, rest = parts[1], parts[3:]
        else:
            return None
        namespace = None
        if len(rest) == 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if len(rest) != 1 or (group, rest[0]) not in self.kinds:
            return None
        return self.kinds[(group, rest[0])], namespace

    def list_page(
        self, kind: Kind, namespace: str | None, limit: int, cont: str | None
    ) -> tuple[int, JsonObject]:
        with self._lock:
            rv, start = self._rv, 0
            if cont:
                token_rv, _, offset = cont.partition(":")
                if int(token_rv) < self._compacted:
                    return 410, _status(410, "Expired", "The provided continue parameter is too old")
                rv, start = int(token_rv), int(offset)
            # The listing in name order is worked out once per version and namespace, and each page
            # copies only its own objects: a 100,000-pod list is 200 pages.
            # One listing is kept per kind and namespace: lists of several kinds are paged at the
            # same time, and a page of one must not throw away the listing of another.
            key = (kind.group, kind.plural, namespace)
            held = self._listings.get(key)
            if held is None or held[0] != rv:
                ordered = sorted(self._objects[(kind.group, kind.plural)].items())
                held = (rv, [obj for (ns, _), obj in ordered if namespace is None or ns == namespace])
                self._listings[key] = held
            items = held[1]
            end = start + limit if limit else len(items)
            # Stored objects are never changed in place (an update or a deletion stores a new one), so a
            # page may hold them as they are while it is written out, without a deep copy of each.
            typed = {"apiVersion": kind.api_version, "kind": kind.kind}
            page = [{**typed, **obj} for obj in items[start:end]]
        meta: JsonObject = {"resourceVersion": str(rv)}
        if end < len(items):
            meta["continue"] = f"{rv}:{end}"
        return 200, {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": meta,
            "items": page,
        }

    def watch_events(
        self, kind: Kind, namespace: str | None, since: int, bookmarks: bool, timeout_s: float, write: Any
    ) -> None:
        """Stream events after ``since`` until ``timeout_s``, a drop, or a write failure."""
        key = (kind.group, kind.plural)
        deadline = time.monotonic() + timeout_s
        last_bookmark = time.monotonic()
        with self._lock:
            epoch = self._epoch
            if since < self._compacted:
                write(
                    {
                        "type": "ERROR",
                        "object": _status(
                            410, "Expired", f"too old resource version: {since} ({self._compacted})"
                        ),
                    }
                )
                return
        sent = since
        while time.monotonic() < deadline:
            with self._lock:
                if self._epoch != epoch:
                    return
                if self._frozen:
                    self._lock.wait(WAIT_STEP_S)
                    continue
                # The version a bookmark may claim is read with the events, in one hold of the
                # lock: a change made while this stream waits must not be skipped by it.
                current = self._rv
                changes = self._history[key]
                start = bisect.bisect_right(changes, sent, key=lambda change: change[0])
                events = [
                    change
                    for change in changes[start:]
                    if namespace is None or change[2]["metadata"].get("namespace") == namespace
                ]
            if not events:
                with self._lock:
                    if self._rv == current and self._epoch == epoch:
                        self._changed[key].wait(WAIT_STEP_S)
            for rv, event, obj in events:
                write({"type": event, "object": obj})
                sent = rv
            if bookmarks and time.monotonic() - last_bookmark >= BOOKMARK_EVERY_S:
                last_bookmark = time.monotonic()
                sent = max(sent, current)
                write(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": kind.kind,
                            "apiVersion": kind.api_version,
                            "metadata": {"resourceVersion": str(sent)},
                        },
                    }
                )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeCluster

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _json(self, code: int, body: JsonObject) -> None:
        data = orjson.dumps(body)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.fake.requests.append(f"GET {self.path}")
        if self.headers.get("Authorization") != f"Bearer {self.fake.token}":
            self._json(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        parts = [p for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        found = self.fake.discovery(parts)
        if found is not None:
            self._json(200, found)
            return
        target = self.fake.collection(parts)
        if target is None:
            self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return
        kind, namespace = target
        if query.get("watch") in ("true", "1"):
            self._watch(kind, namespace, query)
            return
        code, body = self.fake.list_page(kind, namespace, int(query.get("limit") or 0), query.get("continue"))
        self._json(code, body)

    def _watch(self, kind: Kind, namespace: str | None, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def write(event: JsonObject) -> None:
            data = orjson.dumps(event) + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            self.fake.watch_events(
                kind,
                namespace,
                int(query.get("resourceVersion") or 0),
                query.get("allowWatchBookmarks") == "true",
                float(query.get("timeoutSeconds") or 60),
                write,
            )
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
