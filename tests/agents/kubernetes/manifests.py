"""Real-shaped objects for the test API server, and the pods their controllers would create.

Where each comes from:
- ``job_pi``: the Job of the Kubernetes documentation ("Running an example Job", kubernetes.io,
  ``pi`` computing π with ``perl:5.34.0``), with the status the Job controller writes.
- ``deployment_nginx`` / ``replicaset_of``: the Deployment of the Kubernetes documentation
  ("Creating a Deployment", ``nginx-deployment`` with ``nginx:1.14.2``); the ReplicaSet is the one its
  controller makes (``pod-template-hash`` label, owner reference with ``controller: true``).
- ``pytorchjob_simple``: Kubeflow's ``pytorch-simple`` example (kubeflow/training-operator,
  ``examples/pytorch/simple.yaml``: one Master, one Worker, ``kubeflowkatib/pytorch-mnist``), with the
  training operator's conditions (Created, Running, Succeeded).
- ``training_workload`` / ``runaijob_of``: a Run:ai TrainingWorkload (``run.ai/v2alpha1``) as
  ``runai submit`` creates it (its spec fields wrap values in ``{"value": …}``), and the RunaiJob
  (``run.ai/v1``) it owns, which owns the pods.
- ``knative_service`` / ``configuration_of`` / ``revision_of`` / ``revision_deployment`` /
  ``revision_replicaset``: the ``hello`` Service of Knative's documentation ("Deploying your first
  Knative Service", ``ghcr.io/knative/helloworld-go`` with ``TARGET``), and the chain Knative Serving's
  controllers make under it: the Configuration (same name, owned by the Service), one Revision per
  change of its template (``hello-00001``, ``hello-00002``, owned by the Configuration, labelled with
  their service, configuration and generation), the Revision's Deployment ``<revision>-deployment``
  (``user-container`` and Knative's ``queue-proxy`` sidecar) and that Deployment's ReplicaSet. Pods are
  the ReplicaSet's, as for any Deployment.
- ``scheduler_event``: the ``FailedScheduling`` Event kube-scheduler records about a pod it cannot
  place (``v1 Event``: involvedObject, reason, message, source, first/last timestamps, count).
- Pod statuses follow what the kubelet and scheduler write: ``PodScheduled`` False with reason
  ``Unschedulable`` and the scheduler's message while pending; ``nodeName``, ``startTime``,
  ``Ready`` and running container states once running.
"""

from __future__ import annotations

import copy
from typing import Any

JsonObject = dict[str, Any]


def namespace(name: str, labels: dict[str, str] | None = None) -> JsonObject:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def node(name: str, pool: str | None = None) -> JsonObject:
    labels = {"kubernetes.io/hostname": name}
    if pool is not None:
        labels["run.ai/node-pool"] = pool
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"capacity": {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "8"}},
    }


def owner_ref(owner: JsonObject) -> JsonObject:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def job_pi(ns: str, name: str = "pi") -> JsonObject:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": {"user": "alice"}},
        "spec": {
            "backoffLimit": 4,
            "parallelism": 1,
            "completions": 1,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "pi",
                            "image": "perl:5.34.0",
                            "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"],
                        }
                    ],
                    "restartPolicy": "Never",
                }
            },
        },
        "status": {"active": 1, "startTime": "2026-12-01T10:00:00Z"},
    }


def job_complete(job: JsonObject) -> JsonObject:
    done = copy.deepcopy(job)
    done["status"] = {
        "succeeded": 1,
        "startTime": "2026-12-01T10:00:00Z",
        "completionTime": "2026-12-01T10:05:00Z",
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": "2026-12-01T10:05:00Z"},
            {"type": "Complete", "status": "True", "lastTransitionTime": "2026-12-01T10:05:00Z"},
        ],
    }
    return done


def deployment_nginx(ns: str, replicas: int = 2) -> JsonObject:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "namespace": ns, "labels": {"app": "nginx"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}
                    ]
                },
            },
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }


def replicaset_of(deployment: JsonObject) -> JsonObject:
    ns = deployment["metadata"]["namespace"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": "nginx-deployment-66b6c48dd5",
            "namespace": ns,
            "labels": {"app": "nginx", "pod-template-hash": "66b6c48dd5"},
            "ownerReferences": [owner_ref(deployment)],
        },
        "spec": {"replicas": deployment["spec"]["replicas"], "template": deployment["spec"]["template"]},
        "status": {"replicas": deployment["spec"]["replicas"]},
    }


KNATIVE = "serving.knative.dev/v1"
HELLO_IMAGE = "ghcr.io/knative/helloworld-go:latest"
QUEUE_PROXY_IMAGE = "gcr.io/knative-releases/knative.dev/serving/cmd/queue:v1.16.0"


def _hello_template(target: str) -> JsonObject:
    return {
        "spec": {
            "containers": [
                {
                    "image": HELLO_IMAGE,
                    "env": [{"name": "TARGET", "value": target}],
                    "ports": [{"containerPort": 8080}],
                }
            ]
        }
    }


def knative_service(ns: str, target: str = "World") -> JsonObject:
    return {
        "apiVersion": KNATIVE,
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": ns},
        "spec": {"template": _hello_template(target)},
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {"type": "ConfigurationsReady", "status": "True"},
                {"type": "Ready", "status": "True"},
                {"type": "RoutesReady", "status": "True"},
            ],
            "latestCreatedRevisionName": "hello-00001",
            "latestReadyRevisionName": "hello-00001",
            "url": f"http://hello.{ns}.example.com",
            "traffic": [{"revisionName": "hello-00001", "latestRevision": True, "percent": 100}],
        },
    }


def configuration_of(service: JsonObject) -> JsonObject:
    meta = service["metadata"]
    return {
        "apiVersion": KNATIVE,
        "kind": "Configuration",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "generation": 1,
            "labels": {
                "serving.knative.dev/service": meta["name"],
                "serving.knative.dev/serviceUID": meta["uid"],
            },
            "ownerReferences": [owner_ref(service)],
        },
        "spec": {"template": service["spec"]["template"]},
        "status": {
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True"}],
            "latestCreatedRevisionName": "hello-00001",
            "latestReadyRevisionName": "hello-00001",
        },
    }


def revision_of(configuration: JsonObject, generation: int, target: str = "World") -> JsonObject:
    meta = configuration["metadata"]
    service = meta["labels"]["serving.knative.dev/service"]
    template = _hello_template(target)
    return {
        "apiVersion": KNATIVE,
        "kind": "Revision",
        "metadata": {
            "name": f"{meta['name']}-{generation:05d}",
            "namespace": meta["namespace"],
            "labels": {
                "serving.knative.dev/configuration": meta["name"],
                "serving.knative.dev/configurationGeneration": str(generation),
                "serving.knative.dev/configurationUID": meta["uid"],
                "serving.knative.dev/routingState": "active",
                "serving.knative.dev/service": service,
                "serving.knative.dev/serviceUID": meta["labels"]["serving.knative.dev/serviceUID"],
            },
            "ownerReferences": [owner_ref(configuration)],
        },
        "spec": {**template["spec"], "containerConcurrency": 0, "timeoutSeconds": 300},
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {"type": "Active", "status": "True"},
                {"type": "ContainerHealthy", "status": "True"},
                {"type": "Ready", "status": "True"},
                {"type": "ResourcesAvailable", "status": "True"},
            ],
            "actualReplicas": 1,
            "desiredReplicas": 1,
        },
    }


def revision_deployment(revision: JsonObject) -> JsonObject:
    meta = revision["metadata"]
    labels = {
        "app": meta["name"],
        **meta["labels"],
        "serving.knative.dev/revision": meta["name"],
        "serving.knative.dev/revisionUID": meta["uid"],
    }
    containers = [
        {**revision["spec"]["containers"][0], "name": "user-container"},
        {"name": "queue-proxy", "image": QUEUE_PROXY_IMAGE, "ports": [{"containerPort": 8012}]},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{meta['name']}-deployment",
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [owner_ref(revision)],
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"serving.knative.dev/revisionUID": meta["uid"]}},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
        "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1},
    }


def revision_replicaset(deployment: JsonObject, pod_template_hash: str) -> JsonObject:
    meta = deployment["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{pod_template_hash}",
            "namespace": meta["namespace"],
            "labels": {**meta["labels"], "pod-template-hash": pod_template_hash},
            "ownerReferences": [owner_ref(deployment)],
        },
        "spec": {"replicas": 1, "template": deployment["spec"]["template"]},
        "status": {"replicas": 1, "readyReplicas": 1},
    }


def pytorchjob_simple(ns: str) -> JsonObject:
    container = {
        "name": "pytorch",
        "image": "docker.io/kubeflowkatib/pytorch-mnist:v1beta1-45c5727",
        "imagePullPolicy": "Always",
        "command": ["python3", "/opt/pytorch-mnist/mnist.py", "--epochs=1"],
        "resources": {"limits": {"nvidia.com/gpu": 1}},
    }
    replica = {"restartPolicy": "OnFailure", "template": {"spec": {"containers": [container]}}}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "pytorch-simple", "namespace": ns},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {**replica, "replicas": 1},
                "Worker": {**replica, "replicas": 1},
            }
        },
        "status": {
            "conditions": [
                {
                    "type": "Created",
                    "status": "True",
                    "reason": "PyTorchJobCreated",
                    "lastTransitionTime": "2026-12-01T10:00:00Z",
                },
                {
                    "type": "Running",
                    "status": "True",
                    "reason": "PyTorchJobRunning",
                    "lastTransitionTime": "2026-12-01T10:01:00Z",
                },
            ]
        },
    }


def training_workload(ns: str) -> JsonObject:
    return {
        "apiVersion": "run.ai/v2alpha1",
        "kind": "TrainingWorkload",
        "metadata": {"name": "train-mnist", "namespace": ns, "labels": {"project": "team-b"}},
        "spec": {
            "name": {"value": "train-mnist"},
            "image": {"value": "gcr.io/run-ai-demo/quickstart"},
            "gpu": {"value": "0.5"},
        },
    }


def runaijob_of(workload: JsonObject) -> JsonObject:
    return {
        "apiVersion": "run.ai/v1",
        "kind": "RunaiJob",
        "metadata": {
            "name": workload["metadata"]["name"],
            "namespace": workload["metadata"]["namespace"],
            "ownerReferences": [owner_ref(workload)],
        },
        "spec": {"template": {"spec": {"schedulerName": "runai-scheduler"}}},
        "status": {},
    }


def pod(
    name: str,
    owner: JsonObject | None,
    ns: str,
    image: str,
    *,
    gpu: int | None = None,
    annotations: dict[str, str] | None = None,
    cpu: str = "500m",
    memory: str = "1Gi",
) -> JsonObject:
    limits: JsonObject = {}
    if gpu:
        limits["nvidia.com/gpu"] = str(gpu)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "annotations": annotations or {},
            "ownerReferences": [owner_ref(owner)] if owner is not None else [],
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits},
                }
            ],
            "schedulerName": "default-scheduler",
            "restartPolicy": "Never",
        },
        "status": {
            "phase": "Pending",
            "qosClass": "Burstable",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
                    "lastTransitionTime": "2026-12-01T10:00:00Z",
                }
            ],
        },
    }


def running(p: JsonObject, node_name: str) -> JsonObject:
    out = copy.deepcopy(p)
    out["spec"]["nodeName"] = node_name
    out["status"] = {
        "phase": "Running",
        "startTime": "2026-12-01T10:01:00Z",
        "hostIP": "10.0.0.2",
        "podIP": "10.244.1.7",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-01T10:00:30Z"},
            {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-12-01T10:00:31Z"},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-12-01T10:01:00Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T10:01:00Z"},
        ],
        "containerStatuses": [
            {
                "name": "main",
                "ready": True,
                "restartCount": 0,
                "image": p["spec"]["containers"][0]["image"],
                "state": {"running": {"startedAt": "2026-12-01T10:01:00Z"}},
            }
        ],
    }
    return out


def succeeded(p: JsonObject) -> JsonObject:
    out = copy.deepcopy(p)
    out["status"]["phase"] = "Succeeded"
    out["status"]["conditions"] = [c for c in out["status"]["conditions"] if c["type"] == "PodScheduled"]
    out["status"]["containerStatuses"][0]["state"] = {
        "terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": "2026-12-01T10:05:00Z"}
    }
    return out


def scheduler_event(p: JsonObject) -> JsonObject:
    meta = p["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.17c3a5f0e1d2b4a6", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": "FailedScheduling",
        "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are "
        "available: 2 No preemption victims found for incoming pod.",
        "source": {"component": "default-scheduler"},
        "firstTimestamp": "2026-12-01T10:00:00Z",
        "lastTimestamp": "2026-12-01T10:00:00Z",
        "count": 1,
        "type": "Warning",
        "reportingComponent": "default-scheduler",
    }
