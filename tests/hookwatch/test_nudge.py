"""The one debounced nudge (hookwatch/nudge.py) that runs evaluation and delivery soon."""

from __future__ import annotations

import threading
import time

from hookwatch.nudge import Nudge


def test_a_burst_of_pokes_is_one_run() -> None:
    runs: list[float] = []
    nudge = Nudge("t", lambda: runs.append(time.monotonic()), debounce=0.05)
    nudge.start()
    try:
        for _ in range(20):
            nudge.poke()
        assert nudge.wait_idle(5)
    finally:
        nudge.stop()
    assert len(runs) == 1


def test_a_poke_during_a_run_schedules_the_next() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            started.set()
            release.wait(5)

    nudge = Nudge("t", job, debounce=0.01)
    nudge.start()
    try:
        nudge.poke()
        assert started.wait(5)
        nudge.poke()  # while the first run is still running: it must not be lost
        release.set()
        assert nudge.wait_idle(5)
    finally:
        nudge.stop()
    assert runs == [0, 1]


def gap_between_two_runs(first_run: float, **spacing: float) -> float:
    """Seconds between the starts of two runs poked one after the other; the first run takes
    `first_run` seconds."""
    starts: list[float] = []
    done = threading.Event()

    def job() -> None:
        starts.append(time.monotonic())
        if len(starts) == 2:
            done.set()
        else:
            time.sleep(first_run)

    nudge = Nudge("t", job, debounce=0.01, **spacing)
    nudge.start()
    try:
        nudge.poke()
        assert nudge.wait_idle(5)
        nudge.poke()
        assert done.wait(5)
    finally:
        nudge.stop()
    return starts[1] - starts[0]


def test_runs_start_min_interval_apart() -> None:
    assert gap_between_two_runs(0.0, min_interval=0.3) >= 0.3


def test_a_slow_job_is_spaced_by_its_own_cost() -> None:
    # Three times its 0.2 s, not the 0.05 s min_interval.
    assert gap_between_two_runs(0.2, min_interval=0.05, cost_factor=3.0) >= 0.2 * 3


def test_nothing_runs_before_start_or_after_stop_and_a_failure_is_survived() -> None:
    runs: list[str] = []

    def job() -> None:
        runs.append("run")
        raise RuntimeError("a failing job is logged, the nudge keeps working")

    nudge = Nudge("t", job, debounce=0.01)
    nudge.poke()
    assert nudge.wait_idle(0) and not nudge.running
    nudge.start()
    nudge.poke()
    assert nudge.wait_idle(5)
    nudge.poke()
    assert nudge.wait_idle(5)
    nudge.stop()
    nudge.poke()
    assert nudge.wait_idle(0) and runs == ["run", "run"]


def test_stop_cancels_a_pending_run() -> None:
    runs: list[str] = []
    nudge = Nudge("t", lambda: runs.append("run"), debounce=30.0)
    nudge.start()
    nudge.poke()
    assert not nudge.wait_idle(0)  # pending
    nudge.stop()
    assert nudge.wait_idle(0) and runs == []
