"""Run:ai workload phases and the time accounting derived from a workload's phase history."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    CREATING = "Creating"
    INITIALIZING = "Initializing"
    RESUMING = "Resuming"
    PENDING = "Pending"
    DELETING = "Deleting"
    RUNNING = "Running"
    UPDATING = "Updating"
    STOPPED = "Stopped"
    STOPPING = "Stopping"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    COMPLETED = "Completed"
    TERMINATING = "Terminating"
    UNKNOWN = "Unknown"


TERMINAL_PHASES = frozenset({Phase.COMPLETED, Phase.FAILED})


@dataclass(frozen=True, slots=True)
class PhaseClock:
    """Cumulative Pending / Running time: closed intervals plus the start of the open one.

    Keeping the open interval's start (rather than a running total) is what lets the store serve,
    filter and sort ``totalPendingTimeSeconds`` exactly at request time: the value is
    ``closed + (now - since)`` while the interval is open.
    """

    pending_closed_ms: int = 0
    pending_since_ms: int | None = None
    running_closed_ms: int = 0
    running_since_ms: int | None = None

    @classmethod
    def start(cls, phase: str, at_ms: int, pending_ms: int = 0, running_ms: int = 0) -> PhaseClock:
        return cls(pending_ms, None, running_ms, None).enter(phase, at_ms)

    # Built field by field rather than with ``dataclasses.replace``, which costs several times more:
    # ingestion moves a clock on every phase change it applies.
    def stop(self, at_ms: int) -> PhaseClock:
        """Close whatever interval is open at ``at_ms`` (a phase change, or deletion)."""
        pending_since, running_since = self.pending_since_ms, self.running_since_ms
        if pending_since is None and running_since is None:
            return self
        pending = self.pending_closed_ms + (max(0, at_ms - pending_since) if pending_since is not None else 0)
        running = self.running_closed_ms + (max(0, at_ms - running_since) if running_since is not None else 0)
        return PhaseClock(pending, None, running, None)

    def enter(self, phase: str, at_ms: int) -> PhaseClock:
        clock = self.stop(at_ms)
        if phase == Phase.PENDING:
            return PhaseClock(clock.pending_closed_ms, at_ms, clock.running_closed_ms, None)
        if phase == Phase.RUNNING:
            return PhaseClock(clock.pending_closed_ms, None, clock.running_closed_ms, at_ms)
        return clock

    def pending_seconds(self, now_ms: int) -> int:
        return _seconds(self.pending_closed_ms, self.pending_since_ms, now_ms)

    def running_seconds(self, now_ms: int) -> int:
        return _seconds(self.running_closed_ms, self.running_since_ms, now_ms)


def _seconds(closed_ms: int, since_ms: int | None, now_ms: int) -> int:
    # The query layer filters and sorts on exactly this arithmetic in SQL
    # (``Compiler.elapsed_ms_expr``): an open interval that starts after ``now_ms`` (a cluster clock
    # ahead of ours) counts 0, so a duration is never negative.
    open_ms = max(0, now_ms - since_ms) if since_ms is not None else 0
    return (closed_ms + open_ms) // 1000
