"""PhaseClock: cumulative Pending / Running time from a workload's phase changes."""

from __future__ import annotations

import pytest

from workplane.domain.phases import TERMINAL_PHASES, Phase, PhaseClock


def test_start_in_pending_grows_with_the_clock() -> None:
    clock = PhaseClock.start("Pending", 1_000)
    assert clock == PhaseClock(0, 1_000, 0, None)
    assert clock.pending_seconds(1_000) == 0
    assert clock.pending_seconds(1_999) == 0
    assert clock.pending_seconds(2_000) == 1
    assert clock.pending_seconds(601_000) == 600
    assert clock.running_seconds(601_000) == 0


def test_pending_ten_minutes_then_running() -> None:
    clock = PhaseClock.start("Pending", 0).enter("Running", 600_000)
    assert clock == PhaseClock(600_000, None, 0, 600_000)
    assert clock.pending_seconds(900_000) == 600
    assert clock.running_seconds(900_000) == 300
    assert clock.running_seconds(4_200_000) == 3_600


def test_initial_totals_are_kept() -> None:
    clock = PhaseClock.start("Running", 10_000, pending_ms=42_000, running_ms=8_000)
    assert clock.pending_seconds(20_000) == 42
    assert clock.running_seconds(20_000) == 18


@pytest.mark.parametrize("phase", [p for p in Phase if p not in (Phase.PENDING, Phase.RUNNING)])
def test_other_phases_run_no_clock(phase: Phase) -> None:
    clock = PhaseClock.start("Running", 0).enter(phase, 5_000)
    assert clock == PhaseClock(0, None, 5_000, None)
    assert clock.running_seconds(10**9) == 5


def test_stop_closes_whatever_is_open_and_is_idempotent() -> None:
    clock = PhaseClock.start("Running", 0).stop(2_500)
    assert clock == PhaseClock(0, None, 2_500, None)
    assert clock.stop(9_000) == clock
    assert clock.running_seconds(10**9) == 2


def test_entering_the_same_phase_restarts_nothing_lost() -> None:
    clock = PhaseClock.start("Pending", 0).enter("Pending", 1_500)
    assert clock == PhaseClock(1_500, 1_500, 0, None)
    assert clock.pending_seconds(3_000) == 3


def test_sub_second_intervals_add_up_before_rounding() -> None:
    clock = PhaseClock.start("Pending", 0)
    for at in range(600, 6_000, 600):  # Running and Pending alternately, 600 ms each
        clock = clock.enter("Running" if (at // 600) % 2 else "Pending", at)
    clock = clock.stop(6_000)
    assert (clock.pending_closed_ms, clock.running_closed_ms) == (3_000, 3_000)
    assert (clock.pending_seconds(0), clock.running_seconds(0)) == (3, 3)


def test_time_never_runs_backwards() -> None:
    # A phase change reported after "now" (a cluster clock ahead of ours) counts 0, never negative.
    clock = PhaseClock.start("Pending", 10_000, pending_ms=5_000)
    assert clock.pending_seconds(4_000) == 5
    # Closing an interval before it started adds nothing either.
    assert clock.stop(9_000) == PhaseClock(5_000, None, 0, None)


def test_terminal_phases() -> None:
    assert frozenset({Phase.COMPLETED, Phase.FAILED}) == TERMINAL_PHASES
    assert [p.value for p in Phase] == [
        "Creating",
        "Initializing",
        "Resuming",
        "Pending",
        "Deleting",
        "Running",
        "Updating",
        "Stopped",
        "Stopping",
        "Degraded",
        "Failed",
        "Completed",
        "Terminating",
        "Unknown",
    ]
