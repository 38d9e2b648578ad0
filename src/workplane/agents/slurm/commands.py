"""Running Slurm's clients: output streamed line by line, bounded in time, errors said plainly.

Every command runs with ``SLURM_TIME_FORMAT=%s`` (times as epoch seconds) and a time limit: Slurm's
clients block for many seconds when slurmctld or slurmdbd is down, and a poll must end. Output is read
as it comes, one line at a time, so a queue of any length never sits in memory whole (a 10,000-job
``squeue --json`` is tens of megabytes of text, and several times that once parsed).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from workplane.agents.slurm.jobs import FINISHED_STATES_ARG, SACCT_FIELDS, squeue_format


class SlurmCommandError(RuntimeError):
    """A Slurm client failed, timed out or could not be started; what it read is incomplete."""


@dataclass
class Slurm:
    """Slurm's clients on this machine (``bin_dir`` if they are not on the PATH)."""

    bin_dir: str | None = None
    timeout_s: float = 60.0
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def _program(self, name: str) -> str:
        return os.path.join(self.bin_dir, name) if self.bin_dir else name

    def lines(self, name: str, args: Sequence[str]) -> Iterator[str]:
        """The output of ``name args`` line by line; raises ``SlurmCommandError`` (after the last line)
        when the command fails or runs past the time limit."""
        env = {**self.env, "SLURM_TIME_FORMAT": "%s"}
        command = [self._program(name), *args]
        with tempfile.TemporaryFile() as errors:
            try:
                process = subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=errors, env=env, text=True, bufsize=1 << 16
                )
            except OSError as exc:
                raise SlurmCommandError(f"{name}: {exc.strerror or exc}") from None
            timed_out = threading.Event()

            def expire() -> None:
                timed_out.set()
                process.kill()

            timer = threading.Timer(self.timeout_s, expire)
            timer.start()
            try:
                assert process.stdout is not None
                with process.stdout:
                    yield from process.stdout
                code = process.wait()
            finally:
                timer.cancel()
                if process.poll() is None:  # the consumer stopped early
                    process.kill()
                    process.wait()
            if timed_out.is_set():
                raise SlurmCommandError(f"{name}: no answer within {self.timeout_s:g} s")
            if code != 0:
                errors.seek(0)
                text = errors.read(2000).decode("utf-8", "replace").strip()
                raise SlurmCommandError(f"{name} exited with {code}: {text or 'no message'}")

    def output(self, name: str, args: Sequence[str]) -> str:
        return "".join(self.lines(name, args))

    # -- the reads the agent makes ----------------------------------------------------------------

    def config(self) -> dict[str, str]:
        """``scontrol show config`` as a mapping (ClusterName, AccountingStorageType, MinJobAge, …)."""
        out: dict[str, str] = {}
        for line in self.lines("scontrol", ["show", "config"]):
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip()
        return out

    def queue(self) -> Iterator[str]:
        """Every job slurmctld holds, each array task on its own line, finished ones too."""
        return self.lines("squeue", self.queue_args())

    @staticmethod
    def queue_args() -> list[str]:
        return ["--noheader", "--array", "--states=all", "-O", squeue_format()]

    def finished_between(self, start_s: int, end_s: int) -> Iterator[str]:
        """Accounting rows (jobs and their steps) of the jobs that finished in [start, end]."""
        return self.lines(
            "sacct",
            [
                "--noheader",
                "--parsable2",
                "--allusers",
                f"--starttime={_local(start_s)}",
                f"--endtime={_local(end_s)}",
                f"--state={FINISHED_STATES_ARG}",
                "--format=" + ",".join(SACCT_FIELDS),
            ],
        )

    def accounting_of(self, job_ids: Sequence[str]) -> Iterator[str]:
        """Accounting rows of these jobs (ids as ``squeue`` printed them), whatever their state."""
        return self.lines(
            "sacct",
            [
                "--noheader",
                "--parsable2",
                "--allusers",
                "--jobs=" + ",".join(job_ids),
                "--format=" + ",".join(SACCT_FIELDS),
            ],
        )

    def associations(self, cluster: str) -> dict[str, str]:
        """Each account's parent account in slurmdbd's association tree."""
        parents: dict[str, str] = {}
        args = ["--noheader", "--parsable2", "show", "associations", "where", f"cluster={cluster}"]
        for line in self.lines("sacctmgr", [*args, "format=Account,ParentName,User"]):
            account, parent, user = [*line.rstrip("\n").split("|"), "", "", ""][:3]
            if account and parent and not user:
                parents[account] = parent
        return parents

    def step_usage(self, raw_ids: Sequence[str]) -> Iterator[str]:
        """``sstat`` rows (``JobID|TRESUsageInTot``) of every step of these running jobs."""
        return self.lines(
            "sstat",
            [
                "--noheader",
                "--parsable2",
                "--allsteps",
                "--jobs=" + ",".join(raw_ids),
                "--format=JobID,TRESUsageInTot",
            ],
        )


def _local(epoch_s: int) -> str:
    # sacct reads times in the local time zone and takes no epoch seconds.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch_s))
