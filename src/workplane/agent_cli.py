"""``workplane agent slurm``: the Slurm cluster agent's command line (README "Slurm clusters").

Like ``replay``, the agent is a client of a running server (the sync protocol) and takes only its own
flags; it needs an agent access key bound to the cluster (``workplane access-key create --kind agent
--cluster <clusterId>``) and Slurm's clients (squeue, sacct, sstat, sacctmgr, scontrol) on this machine.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import uuid
from types import FrameType

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration_s(text: str) -> float:
    """Seconds, or a duration with a unit: ``90``, ``90s``, ``15m``, ``24h``, ``7d``."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds or a duration such as 30s, 15m, 24h, 7d")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def _cluster_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a cluster id (a UUID)") from None


def _run_slurm(args: argparse.Namespace) -> int:
    from workplane.agents.client import SyncClient, agent_credentials
    from workplane.agents.slurm.agent import SlurmAgent
    from workplane.agents.slurm.commands import Slurm, SlurmCommandError
    from workplane.agents.slurm.jobs import Organisation

    if args.poll_interval <= 0:
        raise ValueError("--poll-interval must be positive")
    if not 1 <= args.batch_size <= 20_000:
        raise ValueError("--batch-size must be between 1 and 20,000")
    client_id, secret = agent_credentials(args.client_id, args.client_secret, args.credentials_file)
    agent = SlurmAgent(
        SyncClient(args.server, client_id, secret),
        args.cluster_id,
        slurm=Slurm(bin_dir=args.slurm_bin_dir, timeout_s=args.slurm_timeout),
        cluster_name=args.cluster_name,
        poll_s=args.poll_interval,
        keep_finished_s=int(args.keep_finished),
        resync_interval_s=args.resync_interval,
        accounting={"auto": None, "on": True, "off": False}[args.accounting],
        organisation=Organisation(
            default_project=args.default_project,
            default_department=args.default_department,
            department_from_parent=args.department_from_parent,
        ),
        sample_interval_s=args.sample_interval,
        batch_size=args.batch_size,
        log=lambda line: print(line, flush=True),
    )
    if args.once:
        try:
            agent.connect()
        except SlurmCommandError as exc:
            print(f"workplane agent slurm: {exc}", file=sys.stderr)
            return 1
        return 0 if not agent.step(need_resync=True) else 1

    def stop(signum: int, frame: FrameType | None) -> None:
        agent.stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    agent.run()
    print("slurm agent: stopped", file=sys.stderr, flush=True)
    return 0


def add_parser(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``workplane agent slurm``, among the ``agent`` command's kinds (``cli._add_agent_parsers``)."""
    slurm = kinds.add_parser(
        "slurm",
        help="report a Slurm cluster's jobs as workloads (sync protocol)",
        description="Poll a Slurm cluster with its own clients (squeue, sacct, sstat, sacctmgr) and report "
        "every job — each array task, each heterogeneous-job component — as a workload of --cluster-id "
        "through the sync protocol, with CPU and memory samples of running jobs. One agent per cluster, on "
        "a machine where Slurm's clients reach slurmctld (and slurmdbd for history).",
    )
    slurm.add_argument(
        "--server", default="http://127.0.0.1:8080", help="base URL of the server (default %(default)s)"
    )
    slurm.add_argument(
        "--cluster-id",
        required=True,
        type=_cluster_id,
        help="the workplane cluster id (UUID) the agent key is bound to",
    )
    slurm.add_argument(
        "--cluster-name", help="the cluster's name as workplane shows it (default: Slurm's ClusterName)"
    )
    slurm.add_argument("--client-id", help="agent access key client id (default: from --credentials-file)")
    slurm.add_argument("--client-secret", help="agent access key secret (default: from --credentials-file)")
    slurm.add_argument(
        "--credentials-file",
        help="file with WORKPLANE_CLIENT_ID= and WORKPLANE_CLIENT_SECRET= lines (default: those environment "
        "variables, else ./data/admin-credentials.env)",
    )
    slurm.add_argument(
        "--poll-interval", type=duration_s, default=5.0, help="time between polls (default 5s; 10s, 1m …)"
    )
    slurm.add_argument(
        "--keep-finished",
        type=duration_s,
        default=86_400.0,
        help="how long finished jobs stay in the inventory after they end; older ones are reported deleted "
        "at the next full resync (default 24h; needs slurmdbd beyond slurmctld's MinJobAge)",
    )
    slurm.add_argument(
        "--resync-interval",
        type=duration_s,
        default=3600.0,
        help="time between full resyncs (default 1h); one is also made at start and after an outage",
    )
    slurm.add_argument(
        "--accounting",
        choices=["auto", "on", "off"],
        default="auto",
        help="read finished jobs and associations from slurmdbd (sacct, sacctmgr): auto (the default) when "
        "slurmctld's AccountingStorageType is slurmdbd",
    )
    slurm.add_argument(
        "--default-project",
        default="default",
        help="project of jobs without a Slurm account (default %(default)s)",
    )
    slurm.add_argument(
        "--default-department",
        default="default",
        help="department of accounts whose parent is root or unknown (default %(default)s)",
    )
    slurm.add_argument(
        "--department-from-parent",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="department = the account's parent in slurmdbd's association tree (default on; off: every "
        "project in --default-department)",
    )
    slurm.add_argument(
        "--sample-interval",
        type=duration_s,
        default=15.0,
        help="time between CPU/memory samples of running jobs (sstat); 0 turns them off (default 15s)",
    )
    slurm.add_argument("--slurm-bin-dir", help="directory of Slurm's clients when they are not on the PATH")
    slurm.add_argument(
        "--slurm-timeout",
        type=duration_s,
        default=60.0,
        help="longest a Slurm client may take before the poll is abandoned (default 60s)",
    )
    slurm.add_argument(
        "--batch-size",
        type=int,
        default=2000,
        help="workloads per sync request (default %(default)s; the protocol allows up to 20,000)",
    )
    slurm.add_argument(
        "--once", action="store_true", help="make one full resync and exit (status 1 if it did not complete)"
    )
    slurm.set_defaults(run=_run_slurm)
