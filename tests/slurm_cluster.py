"""A real single-node Slurm cluster in a temporary directory, for the Slurm agent's tests and benchmark.

``SlurmCluster(root).start()`` runs, each in the foreground under ``root`` with its PID kept: munged on
a private socket, with ``accounting`` a private MariaDB and slurmdbd (job history, associations), then
slurmctld and slurmd, with two fake GPUs (character devices made with ``mknod``, listed in gres.conf
with ``AutoDetect=off``). Readiness is polled with bounded ``timeout 2 scontrol ping`` loops, because
Slurm's clients block for many seconds while slurmctld is down; slurmd is stopped before slurmctld.

``scripts/install-slurm`` installs the Debian packages (``scripts/test`` calls it); ``missing()`` names
what is not installed, for a clear skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.server import free_port

PROGRAMS = ("munged", "mungekey", "slurmctld", "slurmd", "scontrol", "sbatch", "squeue", "sacct", "sstat")
ACCOUNTING_PROGRAMS = ("slurmdbd", "sacctmgr", "mariadbd", "mariadb-install-db", "mariadb")
CLUSTER = "wptest"
NODE = socket.gethostname().split(".")[0]
# slurmctld talks to slurmdbd through munge's default socket whatever AuthInfo says: a link there
# points at the private munged while the cluster runs.
DEFAULT_MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
READY_TIMEOUT_S = 30.0


def _which(program: str) -> str | None:
    return shutil.which(program) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / program).is_file()), None
    )


def missing(accounting: bool = True) -> list[str]:
    """The programs a cluster needs that are not installed."""
    wanted = PROGRAMS + (ACCOUNTING_PROGRAMS if accounting else ())
    return [p for p in wanted if _which(p) is None]


class SlurmError(RuntimeError):
    pass


class SlurmCluster:
    """One private cluster; ``env`` is what Slurm's clients need to reach it (``SLURM_CONF``)."""

    def __init__(
        self,
        root: Path,
        *,
        accounting: bool = True,
        cpus: int = 8,
        memory_mb: int = 8000,
        gpus: int = 2,
        min_job_age_s: int = 300,
        max_array_size: int = 1001,
    ) -> None:
        self.root = root
        self.accounting = accounting
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.gpus = gpus
        self.min_job_age_s = min_job_age_s
        self.max_array_size = max_array_size
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._linked_munge = False
        self.ctld_port = free_port()
        self.slurmd_port = free_port()
        self.dbd_port = free_port()
        self.db_port = free_port()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SlurmCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("munge", "state", "spool", "log", "dev", "db", "jobs"):
            (self.root / sub).mkdir(exist_ok=True)
        try:
            self._start_munge()
            if self.accounting:
                self._start_accounting()
            self._write_configs()
            self.start_slurmctld()
            self._spawn("slurmd", [_need("slurmd"), "-D", "-f", str(self.conf)])
            self.wait_node_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        # Jobs first: their slurmstepd would outlive slurmd.
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self.cancel_all()
        # slurmd before slurmctld: it may ignore SIGTERM while it retries registering with a slurmctld
        # that is gone.
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            process = self.processes.pop(name, None)
            if process is not None:
                _terminate(process)
        self._kill_strays()
        if self._linked_munge:
            with contextlib.suppress(OSError):
                if DEFAULT_MUNGE_SOCKET.is_symlink() and os.readlink(DEFAULT_MUNGE_SOCKET) == str(
                    self.munge_socket
                ):
                    DEFAULT_MUNGE_SOCKET.unlink()
            self._linked_munge = False

    def _kill_strays(self) -> None:
        """SIGKILL what is left of this cluster's jobs — their scripts run from its spool directory —
        with the slurmstepd above each and every process below: a step outlives slurmd when its job
        could not be cancelled."""
        spool = f"{self.root / 'spool'}/"
        parents: dict[int, int] = {}
        roots: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(entry.name)
                parents[pid] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if spool in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    roots.add(pid)
        for pid in list(roots):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{parents[pid]}/comm").read_text().startswith("slurmstepd"):
                    roots.add(parents[pid])
        victims = set(roots)
        grew = True
        while grew:  # every descendant
            below = {pid for pid, parent in parents.items() if parent in victims} - victims
            victims |= below
            grew = bool(below)
        for pid in victims:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def cancel_all(self, timeout_s: float = 30.0) -> None:
        """Cancel every job and wait (bounded) until none is running or completing."""
        subprocess.run(
            ["timeout", "60", "scancel", "--user=root"], env=self.env, capture_output=True, check=False
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = subprocess.run(
                ["timeout", "2", "squeue", "-h", "-t", "CG,R,CF,S", "-o", "%i"],
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
            )
            if answer.returncode == 0 and not answer.stdout.strip():
                return
            time.sleep(0.2)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_slurmctld(self) -> None:
        # -i: carry on past unreadable state files (a restart keeps its jobs, from StateSaveLocation).
        self._spawn("slurmctld", [_need("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self.wait_ping()

    def stop_slurmctld(self) -> None:
        process = self.processes.pop("slurmctld", None)
        if process is not None:
            _terminate(process)

    # -- clients ---------------------------------------------------------------------------------

    def run(self, *args: str, timeout_s: float = 30.0, check: bool = True) -> str:
        # From the cluster's own directory: a batch job's output (slurm-<id>.out) lands where it was
        # submitted.
        answer = subprocess.run(
            list(args),
            env=self.env,
            cwd=self.root / "jobs",
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and answer.returncode != 0:
            raise SlurmError(f"{' '.join(args)}: exit {answer.returncode}: {answer.stderr.strip()}")
        return answer.stdout

    def sbatch(self, *args: str) -> str:
        """Submit a batch job; returns its id (``--parsable``: the number, or ``id;cluster``)."""
        return self.run("sbatch", "--parsable", *args).strip().split(";")[0]

    def sacctmgr(self, *args: str) -> str:
        return self.run("sacctmgr", "-i", *args)

    def wait_ping(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            answer = subprocess.run(
                ["timeout", "2", "scontrol", "ping"],
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
            )
            if answer.returncode == 0 and "UP" in answer.stdout:
                return
            time.sleep(0.1)
        raise SlurmError(f"slurmctld did not answer within {timeout_s:.0f} s:\n{self.log_tail('slurmctld')}")

    def wait_node_idle(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            self._check_alive()
            answer = subprocess.run(
                ["timeout", "2", "sinfo", "-h", "-N", "-o", "%T"],
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
            )
            state = ",".join(sorted(set(answer.stdout.split())))  # one line per partition
            if answer.returncode == 0 and state in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.1)
        raise SlurmError(f"the node is {state!r} after {timeout_s:.0f} s:\n{self.log_tail('slurmd')}")

    def log_tail(self, name: str, limit: int = 3000) -> str:
        try:
            return (self.root / "log" / f"{name}.log").read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"

    # -- pieces ----------------------------------------------------------------------------------

    def _spawn(self, name: str, command: Sequence[str], env: dict[str, str] | None = None) -> None:
        output = (self.root / "log" / f"{name}.out").open("ab")
        with output:
            self.processes[name] = subprocess.Popen(
                list(command), env=env or self.env, stdout=output, stderr=subprocess.STDOUT
            )

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                out = (self.root / "log" / f"{name}.out").read_text(errors="replace")[-2000:]
                raise SlurmError(f"{name} exited with {process.returncode}:\n{out}\n{self.log_tail(name)}")

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        subprocess.run([_need("mungekey"), "-c", "-k", str(key)], check=True, capture_output=True)
        key.chmod(0o400)
        self._spawn(
            "munged",
            [
                _need("munged"),
                "-F",
                "--force",
                "-S",
                str(self.munge_socket),
                f"--key-file={key}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                f"--seed-file={self.root / 'munge' / 'munged.seed'}",
            ],
        )
        _wait_for(lambda: self.munge_socket.exists(), 10.0, "munged's socket")

    def _link_default_munge_socket(self) -> None:
        if DEFAULT_MUNGE_SOCKET.exists():
            raise SlurmError(
                f"{DEFAULT_MUNGE_SOCKET} belongs to another munged: a private slurmdbd cannot be reached"
            )
        DEFAULT_MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
        if DEFAULT_MUNGE_SOCKET.is_symlink():  # dangling: left by a cluster that is gone
            DEFAULT_MUNGE_SOCKET.unlink()
        DEFAULT_MUNGE_SOCKET.symlink_to(self.munge_socket)
        self._linked_munge = True

    def _start_accounting(self) -> None:
        self._link_default_munge_socket()
        data = self.root / "db" / "data"
        db_socket = self.root / "db" / "mariadb.sock"
        subprocess.run(
            [_need("mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=root"],
            check=True,
            capture_output=True,
        )
        self._spawn(
            "mariadbd",
            [
                _need("mariadbd"),
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={db_socket}",
                f"--port={self.db_port}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-log-bin",
                f"--pid-file={self.root / 'db' / 'mariadbd.pid'}",
            ],
        )
        _wait_for(lambda: db_socket.exists(), 20.0, "mariadbd's socket")
        sql = (
            "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';"
            "GRANT ALL ON *.* TO 'slurm'@'127.0.0.1';"
            "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';"
            "GRANT ALL ON *.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
        )
        subprocess.run(
            [_need("mariadb"), "--no-defaults", f"--socket={db_socket}", "-u", "root", "-e", sql],
            check=True,
            capture_output=True,
        )
        dbd_conf = self.root / "slurmdbd.conf"
        dbd_conf.write_text(
            "\n".join(
                [
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    "DbdHost=localhost",
                    "DbdAddr=127.0.0.1",
                    f"DbdPort={self.dbd_port}",
                    "SlurmUser=root",
                    f"PidFile={self.root / 'slurmdbd.pid'}",
                    f"LogFile={self.root / 'log' / 'slurmdbd.log'}",
                    "StorageType=accounting_storage/mysql",
                    "StorageHost=127.0.0.1",
                    f"StoragePort={self.db_port}",
                    "StorageUser=slurm",
                    "StoragePass=slurm",
                    "StorageLoc=slurm_acct_db",
                    "",
                ]
            )
        )
        dbd_conf.chmod(0o600)
        self._write_configs()  # sacctmgr reads slurm.conf to find slurmdbd
        # slurmdbd has no -f: it reads slurmdbd.conf next to $SLURM_CONF.
        self._spawn("slurmdbd", [_need("slurmdbd"), "-D"])
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            self._check_alive()
            answer = subprocess.run(
                ["timeout", "5", "sacctmgr", "-i", "add", "cluster", CLUSTER],
                env=self.env,
                capture_output=True,
                text=True,
                check=False,
            )
            if answer.returncode == 0 or "already exists" in answer.stdout + answer.stderr:
                return
            if time.monotonic() > deadline:
                raise SlurmError(f"slurmdbd did not answer: {answer.stderr}\n{self.log_tail('slurmdbd')}")
            time.sleep(0.2)

    def _write_configs(self) -> None:
        devices = self.root / "dev"
        for index in range(self.gpus):
            device = devices / f"nvidia{index}"
            if not device.exists():
                os.mknod(device, 0o666 | 0o020000, os.makedev(195, index))  # a character device
        log = self.root / "log"
        if self.accounting:
            accounting = [
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                f"AccountingStoragePort={self.dbd_port}",
                "AccountingStorageTRES=gres/gpu",
                "JobCompType=jobcomp/none",
            ]
        else:
            accounting = [
                "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/filetxt",
                f"JobCompLoc={log / 'jobcomp.txt'}",
            ]
        lines = [
            f"ClusterName={CLUSTER}",
            f"SlurmctldHost={NODE}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={log / 'slurmctld.log'}",
            f"SlurmdLogFile={log / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=task=1",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "DefMemPerCPU=500",
            "GresTypes=gpu",
            "MailProg=/bin/true",
            f"MinJobAge={self.min_job_age_s}",
            f"MaxArraySize={self.max_array_size}",
            "MaxJobCount=200000",
            "ReturnToService=2",
            # More CPUs and memory than the machine has, so that test jobs run side by side.
            "SlurmdParameters=config_overrides",
            "SchedulerParameters=sched_interval=1,bf_interval=1",
            "SlurmctldTimeout=10",
            # A client retries connecting to a slurmctld that is down once a second for MessageTimeout
            # seconds (10 by default) before it gives up; 5 keeps a down controller's failure quick
            # while leaving an RPC on a loaded machine ample time.
            "MessageTimeout=5",
            "SlurmdTimeout=10",
            "InactiveLimit=0",
            "KillWait=2",
            *accounting,
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} "
            f"Gres=gpu:{self.gpus} State=UNKNOWN",
            f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
            f"PartitionName=batch Nodes={NODE} MaxTime=INFINITE State=UP",
            "",
        ]
        self.conf.write_text("\n".join(lines))
        (self.root / "gres.conf").write_text(
            f"AutoDetect=off\nName=gpu File={devices}/nvidia[0-{self.gpus - 1}]\n"
        )


def _need(program: str) -> str:
    path = _which(program)
    if path is None:
        raise SlurmError(f"{program} is not installed (scripts/install-slurm installs it)")
    return path


def _terminate(process: subprocess.Popen[bytes], wait_s: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=wait_s)


def _wait_for(condition: object, timeout_s: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SlurmError(f"no {what} after {timeout_s:.0f} s")
        time.sleep(0.02)
