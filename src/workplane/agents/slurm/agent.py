"""The Slurm agent's loop: poll, compare with what was sent, send what changed; resync when needed.

**A poll** reads ``squeue`` (every job slurmctld holds, array tasks expanded) line by line and sends each
job whose sync item differs from the one last sent, in batches of ``batch_size`` built as the lines
come (one batch with the server while the next is built). Then, where slurmdbd keeps accounting, it asks
``sacct`` for the jobs that finished since the last poll: a job that started and ended between two polls,
or that slurmctld has already forgotten (``MinJobAge``), still arrives, from accounting. A job that was
live at the last poll and is gone from both is looked up in accounting by id; without accounting (or
when accounting never learns of it) it is reported deleted, in the phase it was last seen in — except a
pending array task, which vanishes without a trace only when cancelled before it started (Stopped).

**A full resync** (at start, after the server was unreachable, and every ``resync_interval_s``) reports
everything: the queue, and the jobs accounting says finished within ``keep_finished_s``. Whatever the
cluster's workloads hold that it did not report — finished jobs older than that, jobs gone while the agent
was down — the server marks deleted. The agent keeps nothing on disk: its memory of what it sent is
rebuilt by each resync, and workload ids are derived from the cluster and job ids, so a restarted agent
duplicates nothing.

**Revisions** are the poll's time in milliseconds, strictly increasing within a run.

If a Slurm command fails or times out (slurmctld restarting), the poll stops there: nothing is taken
for gone on the strength of an incomplete answer.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

import orjson

from workplane.agents.client import ServerUnavailable, SyncError
from workplane.agents.replay import IN_FLIGHT, Transport
from workplane.agents.slurm import usage
from workplane.agents.slurm.commands import Slurm, SlurmCommandError
from workplane.agents.slurm.jobs import (
    HOLDING,
    Organisation,
    SlurmJob,
    accounting_jobs,
    from_squeue,
    item,
    workload_id,
)
from workplane.domain.timefmt import format_ms

JsonObject = dict[str, Any]
# How far back each poll's accounting query reaches before the previous one ended: slurmctld tells
# slurmdbd about a job's end asynchronously, so a job may reach accounting a little after it ended.
ACCOUNTING_OVERLAP_S = 120
# Polls a vanished job is looked up in accounting before it is taken for deleted.
ACCOUNTING_TRIES = 5
LOOKUP_CHUNK = 500


@dataclass(slots=True)
class Sent:
    """What the server has of one job: the item last sent (while the job is live; finished jobs keep
    only a hash, as they change no more), and for vanished jobs the polls spent looking for them."""

    item: bytes | None
    digest: int
    finished: bool
    batch: bool | None
    running: bool  # the phase sent was Running
    misses: int = 0


@dataclass
class Stats:
    """Counters of one poll or resync."""

    jobs: int = 0
    sent: int = 0
    from_accounting: int = 0
    vanished: int = 0  # left the queue unknown to accounting: deleted, or cancelled array tasks
    samples: int = 0
    seconds: float = 0.0


def _instant(ms: int) -> bytes:
    return str(format_ms(ms)).encode()


class _Batches:
    """Items (already serialised) going to the server in batches, built while up to ``IN_FLIGHT``
    batches are with the server (it applies them in parallel; each job is in one batch only, so their
    order does not matter). A full resync's batches carry its id, and ``close`` sends the final one
    only after every other has been answered."""

    def __init__(self, agent: SlurmAgent, revision: int, resync: str | None = None) -> None:
        self.agent = agent
        self.resync = resync
        self.tail = b',"revision":%d,"observedAt":"%s"}' % (revision, _instant(revision))
        self.items: list[bytes] = []
        self.sent = 0
        self._pool = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="slurm-sync")
        self._pending: list[Future[JsonObject]] = []

    def add(self, data: bytes, deleted_at: int | None = None) -> None:
        extra = b',"deletedAt":"%s"' % _instant(deleted_at) if deleted_at is not None else b""
        self.items.append(data[:-1] + extra + self.tail)
        if len(self.items) >= self.agent.batch_size:
            self._flush(final=False)

    def _body(self, final: bool) -> bytes:
        head = b'{"clusterName":' + orjson.dumps(self.agent.cluster_name)
        if self.resync is not None:
            head += b',"fullResync":' + orjson.dumps({"id": self.resync, "final": final})
        return head + b',"workloads":[' + b",".join(self.items) + b"]}"

    def _flush(self, final: bool) -> None:
        if not self.items and (self.resync is None or not final):
            return
        body = self._body(final)
        self.sent += len(self.items)
        self.items = []
        if final:
            self._wait(0)
            self.agent.transport.sync(self.agent.cluster_id, body)
        else:
            self._wait(IN_FLIGHT - 1)
            self._pending.append(self._pool.submit(self.agent.transport.sync, self.agent.cluster_id, body))

    def _wait(self, at_most: int) -> None:
        """Until at most ``at_most`` batches are unanswered (an error raises here)."""
        while len(self._pending) > at_most:
            self._pending.pop(0).result()

    def close(self) -> None:
        """Send what is left (a resync's final batch even when empty)."""
        self._flush(final=True)

    def __enter__(self) -> _Batches:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self.close()
            else:
                self._wait(0)
        finally:
            self._pool.shutdown(wait=True)


@dataclass
class SlurmAgent:
    transport: Transport
    cluster_id: str
    slurm: Slurm = field(default_factory=Slurm)
    cluster_name: str | None = None  # default: Slurm's ClusterName
    poll_s: float = 5.0
    keep_finished_s: int = 86_400
    resync_interval_s: float = 3600.0
    accounting: bool | None = None  # None: where slurmctld has slurmdbd
    organisation: Organisation = field(default_factory=Organisation)
    sample_interval_s: float = 15.0  # 0: no CPU/memory samples
    batch_size: int = 2000
    log: Callable[[str], None] = print
    clock: Callable[[], float] = time.time
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 20_000:
            raise ValueError("batch size must be between 1 and 20,000")
        self.sent: dict[str, Sent] = {}
        self.slurm_cluster = ""
        self.resyncs = 0
        self.polls = 0
        self._revision = 0
        self._accounted_until_s = 0
        self._last_resync = 0.0
        self._last_sample = 0.0
        self._sampled: dict[str, usage.Sampled] = {}
        self._running: dict[str, str] = {}  # raw job id -> workload id, of the last poll's running jobs
        self._parents_at = 0.0

    # -- setup -----------------------------------------------------------------------------------

    def connect(self) -> None:
        """Read the cluster's configuration: its name, and whether slurmdbd keeps accounting."""
        config = self.slurm.config()
        self.slurm_cluster = config.get("ClusterName", "")
        if self.cluster_name is None:
            self.cluster_name = self.slurm_cluster or "slurm"
        if self.accounting is None:
            self.accounting = config.get("AccountingStorageType", "") == "accounting_storage/slurmdbd"
        self.log(
            f"slurm agent: cluster {self.slurm_cluster or '?'} as {self.cluster_name} "
            f"({self.cluster_id}); accounting {'from slurmdbd' if self.accounting else 'not available'}"
        )

    def _refresh_parents(self, force: bool = False) -> None:
        organisation = self.organisation
        if not (self.accounting and organisation.department_from_parent):
            return
        if not force and time.monotonic() - self._parents_at < 300:
            return
        try:
            parents = self.slurm.associations(self.slurm_cluster)
        except SlurmCommandError as exc:
            self.log(f"slurm agent: associations not read ({exc}); departments as before")
            return
        self._parents_at = time.monotonic()
        self.organisation = Organisation(
            organisation.default_project, organisation.default_department, True, parents
        )

    def _next_revision(self) -> int:
        self._revision = max(int(self.clock() * 1000), self._revision + 1)
        return self._revision

    # -- one job ---------------------------------------------------------------------------------

    def _encode(self, job: SlurmJob) -> bytes:
        assert self.cluster_name is not None
        return orjson.dumps(item(job, self.cluster_name, self.organisation))

    def _remember(self, job: SlurmJob, data: bytes) -> Sent:
        running = job.state in HOLDING
        # A copy: orjson's bytes keep the whole buffer they were written in (8 KB for a 700-byte item),
        # 80 MB for 10,000 jobs kept.
        kept = None if job.finished else memoryview(data).tobytes()
        return Sent(kept, hash(data), job.finished, job.batch, running)

    def _observe(self, job: SlurmJob, out: _Batches, later: list[bytes] | None = None) -> bool:
        """Send ``job`` if it changed since it was last sent; returns whether it was sent. A job last
        sent before it started that has run and finished since is sent Running first, and finished in
        ``later`` (the next batch: a batch keeps one item per workload), so that the server counts its
        running time."""
        before = self.sent.get(job.key)
        if job.batch is None and before is not None:
            job.batch = before.batch  # accounting rows do not always tell
        data = self._encode(job)
        if before is not None and before.digest == hash(data) and (before.finished or before.item == data):
            before.misses = 0
            return False
        skipped_running = before is not None and not before.finished and not before.running
        if later is not None and skipped_running and job.finished and job.start_s is not None:
            out.add(self._encode(replace(job, state="RUNNING", end_s=None)))
            later.append(data)
        else:
            out.add(data)
        self.sent[job.key] = self._remember(job, data)
        return True

    # -- polls -----------------------------------------------------------------------------------

    def resync(self) -> Stats:
        """Report everything the cluster has now, as one full resync."""
        started = time.monotonic()
        stats = Stats()
        revision = self._next_revision()
        now_s = revision // 1000
        self._refresh_parents(force=True)
        resync_id = f"slurm-{revision}-{secrets.token_hex(4)}"
        reported: dict[str, Sent] = {}
        running: dict[str, str] = {}
        with _Batches(self, revision, resync_id) as out:
            for job in self._queue():
                data = self._encode(job)
                out.add(data)
                reported[job.key] = self._remember(job, data)
                self._note_running(job, running)
            stats.jobs = len(reported)
            if self.accounting:
                lines = self.slurm.finished_between(now_s - self.keep_finished_s, now_s)
                for job in accounting_jobs(lines):
                    if job.key not in reported:
                        data = self._encode(job)
                        out.add(data)
                        reported[job.key] = self._remember(job, data)
                        stats.from_accounting += 1
        stats.sent = out.sent
        self.sent = reported
        self._running = running
        self._accounted_until_s = now_s
        self._last_resync = time.monotonic()
        self.resyncs += 1
        stats.seconds = time.monotonic() - started
        return stats

    def poll(self) -> Stats:
        """Send what changed since the last poll."""
        started = time.monotonic()
        stats = Stats()
        revision = self._next_revision()
        now_s = revision // 1000
        self._refresh_parents()
        seen: set[str] = set()
        running: dict[str, str] = {}
        later: list[bytes] = []
        with _Batches(self, revision) as out:
            for job in self._queue():
                seen.add(job.key)
                self._observe(job, out, later)
                self._note_running(job, running)
            stats.jobs = len(seen)
            # The queue was read whole: what it lacks is gone from slurmctld.
            vanished = [key for key, sent in self.sent.items() if not sent.finished and key not in seen]
            if self.accounting:
                since = max(0, self._accounted_until_s - ACCOUNTING_OVERLAP_S)
                for job in accounting_jobs(self.slurm.finished_between(since, now_s)):
                    known = self.sent.get(job.key)
                    if job.key in seen or (known is not None and known.finished):
                        continue  # the queue's word, or already sent finished
                    if self._observe(job, out, later):
                        stats.from_accounting += 1
                self._accounted_until_s = now_s
                vanished = [key for key in vanished if not self.sent[key].finished]
                stats.from_accounting += self._look_up(vanished, out, later)
            stats.vanished = self._give_up(vanished, out, revision)
        stats.sent = out.sent
        if later:
            with _Batches(self, self._next_revision()) as out:
                for data in later:
                    out.add(data)
        self._running = running
        self.polls += 1
        stats.seconds = time.monotonic() - started
        return stats

    def _queue(self) -> Iterable[SlurmJob]:
        for line in self.slurm.queue():
            job = from_squeue(line)
            if job is not None:
                yield job

    def _note_running(self, job: SlurmJob, running: dict[str, str]) -> None:
        if job.state == "RUNNING" and job.raw_id:
            assert self.cluster_name is not None
            running[job.raw_id] = workload_id(self.cluster_name, job.key)

    def _look_up(self, keys: list[str], out: _Batches, later: list[bytes]) -> int:
        """Ask accounting about live jobs that left the queue; returns how many it told about."""
        found = 0
        for start in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[start : start + LOOKUP_CHUNK]
            for job in accounting_jobs(self.slurm.accounting_of(chunk)):
                if job.key in self.sent and self._observe(job, out, later):
                    found += 1
        return found

    def _give_up(self, vanished: list[str], out: _Batches, revision: int) -> int:
        """Settle the live jobs that left the queue and that accounting does not know (at once without
        accounting, after ``ACCOUNTING_TRIES`` polls with it). A pending array task cancelled before it
        started leaves no record anywhere, not even in accounting: it is reported Stopped (Cancelled),
        at once. Any other is reported deleted, in the phase it was last seen in. Returns how many."""
        settled = 0
        for key in vanished:
            sent = self.sent[key]
            if sent.finished:
                continue
            assert sent.item is not None
            sent.misses += 1
            if "_" in key and b'"phase":"Pending"' in sent.item:
                record = orjson.loads(sent.item)
                record.update(phase="Stopped", phaseMessage="Cancelled", phaseUpdatedAt=format_ms(revision))
                record["additionalFields"]["slurmState"] = "CANCELLED"
                data = orjson.dumps(record)
                out.add(data)
                self.sent[key] = Sent(None, hash(data), True, sent.batch, False)  # finished: no copy kept
            elif self.accounting and sent.misses < ACCOUNTING_TRIES:
                continue
            else:
                out.add(sent.item, deleted_at=revision)
                del self.sent[key]
            settled += 1
        return settled

    # -- samples ---------------------------------------------------------------------------------

    def sample(self) -> int:
        """CPU and memory samples of the jobs running at the last poll; returns the series sent."""
        self._last_sample = time.monotonic()
        running = self._running
        if not running:
            self._sampled = {}
            return 0
        rows: list[str] = []
        ids = sorted(running)
        for start in range(0, len(ids), LOOKUP_CHUNK):
            rows.extend(self.slurm.step_usage(ids[start : start + LOOKUP_CHUNK]))
        at_ms = int(self.clock() * 1000)
        series, self._sampled = usage.samples(usage.job_usage(rows), running, self._sampled, at_ms)
        if series:
            body = {"clusterName": self.cluster_name, "workloads": [], "samples": series}
            self.transport.sync(self.cluster_id, orjson.dumps(body))
        return len(series)

    # -- the loop --------------------------------------------------------------------------------

    def step(self, need_resync: bool) -> bool:
        """One poll (a full resync when ``need_resync`` or when one is due); returns whether the next
        must be a full resync."""
        outages = self.transport.outages
        due = time.monotonic() - self._last_resync >= self.resync_interval_s
        try:
            if need_resync or due:
                stats = self.resync()
                self.log(
                    f"slurm agent: full resync: {stats.jobs:,} jobs in the queue, "
                    f"{stats.from_accounting:,} finished from accounting, {stats.sent:,} sent in "
                    f"{stats.seconds:.2f} s"
                )
            else:
                stats = self.poll()
                if stats.sent:
                    self.log(
                        f"slurm agent: {stats.sent:,} changes sent ({stats.from_accounting:,} from "
                        f"accounting, {stats.vanished:,} vanished) of {stats.jobs:,} jobs, "
                        f"{stats.seconds:.2f} s"
                    )
            if self.sample_interval_s > 0 and time.monotonic() - self._last_sample >= self.sample_interval_s:
                self.sample()
        except SlurmCommandError as exc:
            self.log(f"slurm agent: {exc}; trying again at the next poll")
            return need_resync
        except ServerUnavailable as exc:
            self.log(f"slurm agent: server unavailable ({exc}); will resync when it answers")
            return True
        except SyncError as exc:
            self.log(f"slurm agent: the server refused a batch: {exc}")
            return True
        if self.transport.outages > outages:
            self.log("slurm agent: the server went away during this poll; resyncing")
            return True
        return False

    def run(self) -> None:
        """Poll every ``poll_s`` until ``stop`` is set."""
        while True:
            try:
                self.connect()
                break
            except SlurmCommandError as exc:
                self.log(f"slurm agent: cannot read the cluster's configuration ({exc}); retrying")
                if self.stop.wait(self.poll_s):
                    return
        need_resync = True
        next_poll = time.monotonic()
        while not self.stop.is_set():
            need_resync = self.step(need_resync)
            next_poll = max(next_poll + self.poll_s, time.monotonic())
            self.stop.wait(max(0.0, next_poll - time.monotonic()))
