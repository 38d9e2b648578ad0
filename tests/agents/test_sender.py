"""How the replay agent sends a full resync: several batches in flight, each cluster's final one last."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson

from workplane.agents.replay import IN_FLIGHT, snapshot
from workplane.agents.traces import Inventory, Trace


class Recording:
    """A transport that takes a little while per batch and records when each one started and ended."""

    outages = 0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[str, str, bool, list[str]]] = []  # (start|end, cluster, final, ids)
        self.active = 0
        self.most_active = 0

    def sync(self, cluster_id: str, body: bytes) -> dict[str, Any]:
        batch = orjson.loads(body)
        final = bool(batch.get("fullResync", {}).get("final"))
        ids = [w["id"] for w in batch["workloads"]]
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            self.events.append(("start", cluster_id, final, ids))
        time.sleep(0.01)
        with self._lock:
            self.active -= 1
            self.events.append(("end", cluster_id, final, ids))
        return {"applied": len(ids), "ignored": 0, "deleted": 0, "samples": 0}


def test_a_resync_keeps_batches_in_flight_and_ends_each_cluster_last(openb: Trace, dlrm: Trace) -> None:
    inventory = Inventory([openb, dlrm])
    at_ms = inventory.end_ms  # every workload of both traces
    transport = Recording()
    progress = snapshot(inventory, transport, at_ms, batch_size=50, log=lambda _: None)

    assert transport.most_active == IN_FLIGHT == 2
    sent = [i for kind, _, _, ids in transport.events if kind == "start" for i in ids]
    expected = [w for t in (openb, dlrm) for w in t.workloads if w.created_ms <= at_ms]
    assert len(sent) == len(set(sent)) == len(expected) == progress.items == progress.applied
    for cluster in (openb.cluster.id, dlrm.cluster.id):
        events = [(n, kind, final) for n, (kind, c, final, _) in enumerate(transport.events) if c == cluster]
        (final_start,) = [n for n, kind, final in events if kind == "start" and final]
        others_ended = [n for n, kind, final in events if kind == "end" and not final]
        assert others_ended
        assert max(others_ended) < final_start
