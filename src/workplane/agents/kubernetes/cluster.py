"""The agent's picture of its cluster, and which workload each pod belongs to.

**Workload = top owner.** A pod's ``ownerReferences`` (its controller, else its first owner) are
followed up to the top, as Run:ai's scheduler groups pods (NVIDIA KAI-Scheduler's pod grouper is the
open reference): a Deployment's pod goes ReplicaSet → Deployment; a CronJob's, Job → CronJob. The
workload is the highest object of that chain whose kind is a workload type of the catalog (a pod
owned by nothing of the catalog — a static pod, an operator's custom object — is its own workload of
type Pod). Run:ai's own CRDs (TrainingWorkload, …) stand above the object that really runs the pods
(a RunaiJob, a PyTorchJob); as in KAI's "skip top owner" rule, the pods are grouped at that
second-highest owner, whose status the phase is read from, while the workload keeps the top's name and
native type.

A pod whose chain passes through an owner the agent watches but has not seen yet (the pod's watch ran
ahead of its ReplicaSet's) waits, and is grouped once the owner arrives.

**Revision.** A pod whose chain passes through a Knative Revision (Pod → ReplicaSet → Deployment →
Revision → Configuration → Service) belongs to that revision of its Service: the Revision's uid is the
pod's ``revisionId`` (``revision_of``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workplane.agents.kubernetes.kinds import REVISION_OWNER, RUNAI_NATIVE_KINDS, type_of
from workplane.agents.kubernetes.objects import Owner, Pod, Ref
from workplane.domain.catalog import NATIVE_GROUP

Node = Owner | Pod
_MAX_DEPTH = 16  # ownerReferences may form a cycle in a broken cluster: stop walking after this many


@dataclass(frozen=True, slots=True)
class Grouping:
    workload: Node  # the workload's object: its id, name, type and times
    group: Node  # the object its pods are grouped under, whose status gives the phase
    type: str


@dataclass
class ClusterState:
    owners: dict[str, Owner] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    node_pools: dict[str, str | None] = field(default_factory=dict)  # node -> its node-pool label
    queues: dict[str, str | None] = field(default_factory=dict)  # queue -> its parent queue
    # (kind, group) of the owner kinds being watched: an owner of such a kind that is not known yet
    # is waited for; any other owner is outside what the agent sees.
    watched: set[tuple[str, str]] = field(default_factory=set)
    pod_workload: dict[str, str] = field(default_factory=dict)
    workload_pods: dict[str, set[str]] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)  # pods whose owner chain is not complete yet
    dirty_pods: set[str] = field(default_factory=set)
    dirty_owners: set[str] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)  # workload ids to report again

    # -- changes ---------------------------------------------------------------------------------

    def put_pod(self, pod: Pod) -> None:
        self.pods[pod.uid] = pod
        self.dirty_pods.add(pod.uid)

    def remove_pod(self, uid: str) -> None:
        self.pods.pop(uid, None)
        self.dirty_pods.add(uid)

    def put_owner(self, owner: Owner) -> None:
        self.owners[owner.uid] = owner
        self.dirty_owners.add(owner.uid)

    def remove_owner(self, uid: str) -> None:
        if self.owners.pop(uid, None) is not None:
            self.dirty.add(uid)
            self.dirty_owners.add(uid)

    # -- grouping --------------------------------------------------------------------------------

    def chain(self, start: Node) -> list[Node] | None:
        """``start`` and the owners above it that the agent knows; None while one is awaited."""
        chain: list[Node] = [start]
        ref: Ref | None = start.owner
        while ref is not None and len(chain) < _MAX_DEPTH:
            owner = self.owners.get(ref.uid)
            if owner is None:
                if (ref.kind, ref.group) in self.watched:
                    return None
                break  # an owner outside what is watched: the chain ends below it
            chain.append(owner)
            ref = owner.owner
        return chain

    def grouping(self, start: Node) -> Grouping | None:
        chain = self.chain(start)
        if chain is None:
            return None
        for index in range(len(chain) - 1, -1, -1):
            node = chain[index]
            kind, group = (node.kind, node.group) if isinstance(node, Owner) else ("Pod", "")
            workload_type = type_of(kind, group)
            if workload_type is None:
                continue
            grouped: Node = node
            if group == NATIVE_GROUP and kind in RUNAI_NATIVE_KINDS and index >= 2:
                grouped = chain[index - 1]
            return Grouping(node, grouped, workload_type)
        return None  # unreachable: a pod is always a workload of type Pod

    def revision_of(self, pod: Pod) -> str | None:
        """The uid of the workload revision in the pod's owner chain (a Knative Revision), the pod's
        ``revisionId``; None when the chain has none (or is not complete yet)."""
        for node in self.chain(pod) or ():
            if isinstance(node, Owner) and (node.kind, node.group) == REVISION_OWNER:
                return node.uid
        return None

    def regroup(self) -> None:
        """Assign changed pods to their workloads and mark every workload that changed as dirty."""
        pods = self.dirty_pods | self.waiting
        self.dirty_pods = set()
        self.waiting = set()
        for uid in pods:
            previous = self.pod_workload.pop(uid, None)
            if previous is not None:
                self.workload_pods.get(previous, set()).discard(uid)
                self.dirty.add(previous)
            pod = self.pods.get(uid)
            if pod is None:
                continue
            grouping = self.grouping(pod)
            if grouping is None:
                self.waiting.add(uid)
                continue
            self.pod_workload[uid] = grouping.workload.uid
            self.workload_pods.setdefault(grouping.workload.uid, set()).add(uid)
            self.dirty.add(grouping.workload.uid)
        owners, self.dirty_owners = self.dirty_owners, set()
        for uid in owners:
            owner = self.owners.get(uid)
            if owner is None:
                continue
            grouping = self.grouping(owner)
            if grouping is not None:
                self.dirty.add(grouping.workload.uid)

    def workload_node(self, workload_id: str) -> Node | None:
        """The live object of a workload (None once it is gone)."""
        owner = self.owners.get(workload_id)
        if owner is not None:
            grouping = self.grouping(owner)
            return owner if grouping is not None and grouping.workload is owner else None
        return self.pods.get(workload_id)

    def workload_pod_list(self, workload_id: str) -> list[Pod]:
        return [self.pods[uid] for uid in self.workload_pods.get(workload_id, ()) if uid in self.pods]

    def live_workloads(self) -> set[str]:
        """Every workload the cluster has now (pods regrouped first)."""
        self.regroup()
        live = {w for w, pods in self.workload_pods.items() if pods}
        for owner in self.owners.values():
            grouping = self.grouping(owner)
            if grouping is not None:
                live.add(grouping.workload.uid)
        return {w for w in live if self.workload_node(w) is not None}
