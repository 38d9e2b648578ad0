"""The kinds the agent watches, and the discovery that finds which of them a cluster serves.

Pods, Namespaces and Nodes are always there. Every other kind is an *owner*: something that may stand
above pods in their ``ownerReferences``. They are the workload types of the catalog (Run:ai's own
``run.ai`` CRDs and every external type the catalog lists) and the intermediate owners between those
and their pods (a Deployment's ReplicaSets, Knative's Configurations and Revisions, Run:ai's RunaiJob,
Kubeflow Trainer's TrainJob). A kind whose API group or version the cluster does not serve (its CRD is
not installed) is left out of the watch: discovery (``/api``, ``/apis``, ``/apis/<group>/<version>``)
says which are served, in which version, under which plural, and whether namespaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workplane.domain.catalog import EXTERNAL_TYPES, NATIVE_GROUP

CORE = ""  # Kubernetes' core API group ("core" in the catalog's type records)
QUEUE_GROUP = "scheduling.run.ai"

# Run:ai's own CRDs and the native workload type each is reported as.
RUNAI_NATIVE_KINDS: dict[str, str] = {
    "TrainingWorkload": "Training",
    "InteractiveWorkload": "Workspace",
    "DistributedWorkload": "Distributed",
    "InferenceWorkload": "Inference",
    "DistributedInferenceWorkload": "DistributedInference",
}

# The owner whose uid is a pod's ``revisionId``: a Knative Service's pods run under one of its Revisions
# (Service → Configuration → Revision → Deployment → ReplicaSet → Pod).
REVISION_OWNER = ("Revision", "serving.knative.dev")

# Owners that are no workload type of their own but stand between one and its pods.
INTERMEDIATE_OWNERS: tuple[tuple[str, str], ...] = (
    ("RunaiJob", NATIVE_GROUP),
    ("TrainJob", "trainer.kubeflow.org"),
    ("Configuration", "serving.knative.dev"),
    REVISION_OWNER,
    ("VirtualMachine", "kubevirt.io"),
)


def catalog_group(group: str) -> str:
    return "core" if group == CORE else group


def type_of(kind: str, group: str) -> str | None:
    """The catalog workload type an object of (kind, group) is reported as; None when it is none."""
    if group == NATIVE_GROUP and kind in RUNAI_NATIVE_KINDS:
        return RUNAI_NATIVE_KINDS[kind]
    return _EXTERNAL.get((kind, catalog_group(group)))


_EXTERNAL = {(name, group): name for name, group, _category in EXTERNAL_TYPES}


@dataclass(frozen=True, slots=True)
class Wanted:
    kind: str
    group: str


def owner_kinds() -> tuple[Wanted, ...]:
    """Every owner kind the agent watches when the cluster serves it."""
    wanted = [Wanted(kind, NATIVE_GROUP) for kind in RUNAI_NATIVE_KINDS]
    wanted += [Wanted(kind, CORE if group == "core" else group) for kind, group, _ in EXTERNAL_TYPES]
    wanted += [Wanted(kind, group) for kind, group in INTERMEDIATE_OWNERS]
    return tuple(w for w in wanted if w.kind != "Pod")


CORE_KINDS = (Wanted("Pod", CORE), Wanted("Namespace", CORE), Wanted("Node", CORE), Wanted("Event", CORE))
QUEUE_KIND = Wanted("Queue", QUEUE_GROUP)


@dataclass(frozen=True, slots=True)
class Served:
    """A wanted kind as the cluster serves it."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return self.version if self.group == CORE else f"{self.group}/{self.version}"


def served_in(resource_list: dict[str, Any], group: str, version: str) -> dict[str, Served]:
    """The kinds an ``APIResourceList`` (``/api/v1``, ``/apis/<group>/<version>``) serves with list and
    watch, by kind; subresources (``pods/status``) are not kinds."""
    served: dict[str, Served] = {}
    for resource in resource_list.get("resources") or []:
        name = str(resource.get("name", ""))
        verbs = set(resource.get("verbs") or ())
        if "/" in name or not {"list", "watch"} <= verbs:
            continue
        kind = str(resource.get("kind", ""))
        served.setdefault(kind, Served(kind, group, version, name, bool(resource.get("namespaced"))))
    return served


def group_versions(group_list: dict[str, Any]) -> dict[str, list[str]]:
    """Each group of an ``APIGroupList`` (``/apis``) with its versions, the preferred one first."""
    out: dict[str, list[str]] = {}
    for group in group_list.get("groups") or []:
        preferred = (group.get("preferredVersion") or {}).get("version")
        versions = [str(v.get("version")) for v in group.get("versions") or [] if v.get("version")]
        if preferred in versions:
            versions.remove(preferred)
            versions.insert(0, preferred)
        out[str(group.get("name"))] = versions
    return out


# What the agent's ServiceAccount needs (deploy/kubernetes/agent.yaml's ClusterRole is checked against
# these): ``list`` and ``watch`` on every kind it may watch, and ``get`` on discovery's paths.
RBAC_VERBS = ("list", "watch")
DISCOVERY_PATHS = ("/api/v1", "/apis", "/apis/*")  # /apis/* covers /apis/<group>/<version>


def resource_plural(kind: str) -> str:
    """The resource name a kind is served under. Discovery gives the real one at run time; an RBAC
    rule has to name it beforehand, and every kind the agent watches follows the convention of
    Kubernetes and of these projects' CRDs: the kind in lower case plus "s"."""
    return kind.lower() + "s"


def rbac_resources() -> dict[str, tuple[str, ...]]:
    """API group -> the resources the agent lists and watches there, whether or not a cluster serves
    them (a rule on a CRD that is not installed grants nothing)."""
    out: dict[str, set[str]] = {}
    for wanted in (*CORE_KINDS, *owner_kinds(), QUEUE_KIND):
        out.setdefault(wanted.group, set()).add(resource_plural(wanted.kind))
    return {group: tuple(sorted(names)) for group, names in sorted(out.items())}
