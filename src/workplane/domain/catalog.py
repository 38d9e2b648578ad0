"""Run:ai's catalog of workload categories, priorities and types, as seeded on first start.

Ids are UUIDs derived from the names (uuid5 under a fixed namespace), so they are the same in every
installation and a client may hard-code them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

_NAMESPACE = uuid.UUID("5f0b1a7e-3c1d-4c8e-9a57-6f776f726b70")


def catalog_id(kind: str, name: str, group: str = "") -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{group}:{name}"))


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    description: str
    default_priority: str

    @property
    def id(self) -> str:
        return catalog_id("category", self.name)


@dataclass(frozen=True, slots=True)
class Priority:
    name: str
    value: int

    @property
    def id(self) -> str:
        return catalog_id("priority", self.name)

    @property
    def preemptible(self) -> bool:
        # Run:ai: a priority below 100 is preemptible unless the workload says otherwise.
        return self.value < 100


CATEGORIES: tuple[Category, ...] = (
    Category("Build", "Interactive development: notebooks, IDEs and other workspaces.", "high"),
    Category("Train", "Batch training and fine-tuning jobs that run to completion.", "low"),
    Category("Deploy", "Long-running serving: inference services and their dependencies.", "very-high"),
)

PRIORITIES: tuple[Priority, ...] = (
    Priority("very-low", 25),
    Priority("low", 40),
    Priority("medium-low", 65),
    Priority("medium", 80),
    Priority("medium-high", 90),
    Priority("high", 125),
    Priority("very-high", 150),
)

CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}
PRIORITY_BY_NAME = {p.name: p for p in PRIORITIES}

NATIVE_GROUP = "run.ai"

# (name, group, category, source) — source is "native" or "external".
NATIVE_TYPES: tuple[tuple[str, str, str], ...] = (
    ("Workspace", NATIVE_GROUP, "Build"),
    ("Training", NATIVE_GROUP, "Train"),
    ("Distributed", NATIVE_GROUP, "Train"),
    ("Inference", NATIVE_GROUP, "Deploy"),
    ("DistributedInference", NATIVE_GROUP, "Deploy"),
)

EXTERNAL_TYPES: tuple[tuple[str, str, str], ...] = (
    ("AMLJob", "amlarc.azureml.com", "Train"),
    ("CronJob", "batch", "Deploy"),
    ("Deployment", "apps", "Deploy"),
    ("DevWorkspace", "workspace.devfile.io", "Build"),
    ("DynamoGraphDeployment", "nvidia.com", "Deploy"),
    ("InferenceService", "serving.kserve.io", "Deploy"),
    ("JAXJob", "kubeflow.org", "Train"),
    ("Job", "batch", "Build"),
    ("JobSet", "jobset.x-k8s.io", "Train"),
    ("LeaderWorkerSet", "leaderworkerset.x-k8s.io", "Deploy"),
    ("MPIJob", "kubeflow.org", "Train"),
    ("NIMService", "apps.nvidia.com", "Deploy"),
    ("Notebook", "kubeflow.org", "Build"),
    ("PipelineRun", "tekton.dev", "Deploy"),
    # Kubernetes' core API group is the empty string, which the upstream schema's group pattern (and
    # the official client's model) rejects; it is served under its conventional name "core".
    ("Pod", "core", "Deploy"),
    ("PyTorchJob", "kubeflow.org", "Train"),
    ("RayCluster", "ray.io", "Train"),
    ("RayJob", "ray.io", "Train"),
    ("RayService", "ray.io", "Deploy"),
    ("ReplicaSet", "apps", "Deploy"),
    ("ScheduledWorkflow", "kubeflow.org", "Deploy"),
    ("SeldonDeployment", "machinelearning.seldon.io", "Deploy"),
    ("Service", "serving.knative.dev", "Deploy"),
    ("StatefulSet", "apps", "Deploy"),
    ("TaskRun", "tekton.dev", "Build"),
    ("TFJob", "kubeflow.org", "Train"),
    ("VirtualMachineInstance", "kubevirt.io", "Train"),
    ("Workflow", "argoproj.io", "Deploy"),
    ("XGBoostJob", "kubeflow.org", "Train"),
)

TYPE_SOURCE_NATIVE = "native"
TYPE_SOURCE_EXTERNAL = "external"
TYPE_SOURCE_USER = "user_external"

KIND_NAME_PATTERN = r"^[A-Z][a-z0-9]*([A-Z][a-z0-9]*)*$"
GROUP_PATTERN = r"^[a-z](?:[a-z0-9.-]*[a-z0-9])?$"


@dataclass(frozen=True, slots=True)
class TypeDefaults:
    """What the store needs to resolve a workload's effective category and priority."""

    name: str
    category: str
    priority: str


@dataclass(frozen=True, slots=True)
class CatalogSnapshot:
    """The workload types' current defaults: the input of category/priority resolution.

    Workloads keep only the category/priority they were *given*; what they report otherwise is
    resolved through this snapshot at read time, so a PUT on a type changes every such workload at once.
    """

    types: dict[str, TypeDefaults]
    version: int

    def category_of(self, type_name: str, own: str | None) -> str | None:
        if own is not None:
            return own
        defaults = self.types.get(type_name)
        return defaults.category if defaults else None

    def priority_of(self, type_name: str, own: str | None) -> Priority | None:
        name = own
        if name is None:
            defaults = self.types.get(type_name)
            name = defaults.priority if defaults else None
        return PRIORITY_BY_NAME.get(name) if name is not None else None
