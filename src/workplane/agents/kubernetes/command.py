"""``workplane agent kubernetes``: its flags, and starting the agent from them."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from workplane.agents.client import add_connection_flags

if TYPE_CHECKING:
    from workplane.agents.kubernetes.utilisation import UtilisationSource

# Cluster ids derived from a cluster name live under this namespace, so the same name gives the same
# id on every start (and an agent key can be created for it beforehand: ``--print-cluster-id``).
_CLUSTER_NAMESPACE = uuid.UUID("8a1f7a0e-5b64-4f0c-9d1e-6b756265726e")


def cluster_id_for(name: str) -> str:
    return str(uuid.uuid5(_CLUSTER_NAMESPACE, name))


def add_parser(agents: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = agents.add_parser(
        "kubernetes",
        help="watch a Kubernetes cluster and report its workloads to a server (sync protocol)",
        description="Lists and watches a Kubernetes cluster's pods, namespaces, nodes and every workload "
        "kind it serves, and keeps the server's inventory of the cluster's workloads up to date. Reads the "
        "cluster through --kubeconfig/--context, the in-cluster service account (--in-cluster), or "
        "lightkube's defaults (in-cluster when run in a pod, else $KUBECONFIG or ~/.kube/config).",
    )
    add_connection_flags(parser)
    parser.add_argument("--cluster-name", required=True, help="the cluster's name, as the server shows it")
    parser.add_argument(
        "--cluster-id",
        help="the cluster's id (a UUID; default: derived from --cluster-name, the same on every start)",
    )
    parser.add_argument(
        "--print-cluster-id",
        action="store_true",
        help="print the cluster id (to create the agent's key: workplane access-key create --kind agent "
        "--cluster ID) and exit",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--kubeconfig", help="kubeconfig file to read the cluster's address and credentials from"
    )
    source.add_argument(
        "--in-cluster",
        action="store_true",
        help="use the pod's service account (when run inside the cluster)",
    )
    parser.add_argument("--context", help="kubeconfig context to use (default: the file's current-context)")
    parser.add_argument(
        "--project-label",
        default="runai/queue",
        help="namespace label that names the namespace's project (default %(default)s; a namespace "
        "without it is its own project)",
    )
    parser.add_argument(
        "--node-pool-label",
        default="run.ai/node-pool",
        help="node label that names the node's node pool (default %(default)s; nodes without it are in "
        "the pool 'default')",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.25,
        help="least seconds between the starts of two batches of changes: a change is sent as soon as it "
        "is seen unless a batch began less than this long ago, and the changes that come meanwhile go "
        "together in the next (default %(default)g)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=2000, help="workloads per sync request (default %(default)s)"
    )
    parser.add_argument(
        "--watch-timeout",
        type=int,
        default=300,
        help="seconds the API server keeps a watch open before it is renewed (default %(default)s)",
    )
    gpus = parser.add_mutually_exclusive_group()
    gpus.add_argument(
        "--dcgm-exporter-url",
        help="URL of NVIDIA's DCGM exporter's metrics (e.g. http://dcgm-exporter.gpu-operator:9400/metrics): "
        "the workloads' GPU utilisation and GPU memory are read there and sent as metric samples",
    )
    gpus.add_argument(
        "--prometheus-url",
        help="base URL of a Prometheus that scrapes the DCGM exporter (e.g. http://prometheus:9090): "
        "the same samples, read with an instant query",
    )
    parser.add_argument(
        "--utilisation-interval",
        type=float,
        default=15.0,
        help="seconds between GPU readings (default %(default)g, the exporter's own collection period)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lightkube import AsyncClient, KubeConfig
    from lightkube.core.exceptions import ConfigError

    from workplane.agents.client import SyncClient, agent_credentials
    from workplane.agents.kubernetes.agent import AgentConfig, KubernetesAgent
    from workplane.agents.kubernetes.workloads import Labels

    cluster_id = str(uuid.UUID(args.cluster_id)) if args.cluster_id else cluster_id_for(args.cluster_name)
    if args.print_cluster_id:
        print(cluster_id)
        return 0
    if min(args.interval, args.batch_size, args.watch_timeout, args.utilisation_interval) <= 0:
        raise ValueError(
            "--interval, --batch-size, --watch-timeout and --utilisation-interval must be positive"
        )
    client_id, secret = agent_credentials(args.client_id, args.client_secret, args.credentials_file)
    try:
        if args.in_cluster:
            config = KubeConfig.from_service_account()
        elif args.kubeconfig:
            config = KubeConfig.from_file(Path(args.kubeconfig))
        else:
            config = KubeConfig.from_env()
        single = config.get(context_name=args.context)
        if single is None:
            raise ConfigError("no context in the configuration")
    except (ConfigError, OSError) as exc:
        raise ValueError(f"cannot read the Kubernetes configuration: {exc}") from None
    # The client logs every request at INFO: a watched cluster would drown what the agent says.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    settings = AgentConfig(
        cluster_id=cluster_id,
        cluster_name=args.cluster_name,
        labels=Labels(project=args.project_label, node_pool=args.node_pool_label),
        interval_s=args.interval,
        batch_size=args.batch_size,
        watch_timeout_s=args.watch_timeout,
        utilisation=_utilisation_source(args),
    )
    print(
        f"kubernetes agent: cluster {args.cluster_name} ({cluster_id}) at {single.cluster.server} "
        f"-> {args.server}",
        flush=True,
    )

    async def main() -> None:
        _tune_collector()
        kube = AsyncClient(config=single)
        agent = KubernetesAgent(kube, SyncClient(args.server, client_id, secret), settings, say=_say)
        try:
            await agent.run()
        finally:
            await kube.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("workplane agent kubernetes: interrupted", file=sys.stderr)
        return 130
    return 0


def _utilisation_source(args: argparse.Namespace) -> UtilisationSource | None:
    from workplane.agents.kubernetes.utilisation import SourceKind, UtilisationSource

    sources: tuple[tuple[str | None, SourceKind], ...] = (
        (args.dcgm_exporter_url, "dcgm-exporter"),
        (args.prometheus_url, "prometheus"),
    )
    for url, kind in sources:
        if url:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"--{kind}-url must be an http:// or https:// URL, not {url!r}")
            return UtilisationSource(url, kind, interval_s=args.utilisation_interval)
    return None


# Young collections every this many new container objects (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000


def _tune_collector() -> None:
    """The agent holds every pod, owner and event of its cluster (millions of objects at 100,000
    pods), and the lists make most of them at once: with Python's default thresholds the collector
    ran every 700 new objects and, again and again while they came, walked all that the agent
    already held, which cost a third of the agent's CPU time up to its first full resync (13.4 ->
    9.0 s at 100,000 pods, measured in process). What exists once the modules are imported lives as
    long as the process, so it is left out of collections (``gc.freeze``), and young collections
    run every ``GC_YOUNG_THRESHOLD`` objects; cycles are still collected. (A sync worker does the
    same: ``services.store_workers.tune_collector``.)"""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


def _say(line: str) -> None:
    print(line, flush=True)
