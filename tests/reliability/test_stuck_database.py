"""A stuck database: another process holds SQLite's write lock for 20 s under `hookwatch serve`.

Senders get a JSON 503 with Retry-After within 5 s of the stuck commit, never a long wait;
/readyz says not ready while it is stuck and ready after; /healthz stays 200 (liveness);
every 200 was committed; webhooks are accepted again after the release without a restart;
the jobs that hit the lock log one line each, no traceback. The busy timeout is 5 s here, so
within 20 s the writer's batch fails outright too (3 tries) and the evaluator's writes are
refused: both paths are crossed, not only the stall. `pytest -s` prints the figures;
bench/bench_stuck_database.py holds the lock 100 s with the default busy timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.lockprobe import run_lock_probe

pytestmark = pytest.mark.slow


@pytest.mark.timeout(150)
def test_a_locked_database_answers_503_fast_loses_nothing_and_recovers(tmp_path: Path) -> None:
    figures = run_lock_probe(tmp_path, hold=20.0, env={"HOOKWATCH_SQLITE_BUSY_TIMEOUT": "5"})
    print("\n" + figures.summary())

    first = figures.first_503_after()
    assert first is not None and first < 5.0, figures.summary()
    # No sender waited with the lock: at most the stall deadline (3 s) plus the sweep.
    assert figures.slowest_during() < 5.0, figures.summary()
    refused = [a for a in figures.during() if a.status == 503]
    assert refused and all(a.retry_after and a.error == "store_unavailable" for a in refused)
    assert all(a.status in (200, 503) for a in figures.answers), figures.summary()

    ready = figures.ready_during()
    assert ready[503] > 0 and ready[200] == 0, figures.summary()
    stuck = {commits for at, status, commits in figures.ready
             if status == 503 and figures.locked_at <= at < figures.released_at}
    assert any(c.startswith("stalled") for c in stuck), stuck

    again = figures.accepted_again_after()
    assert again is not None and again < 5.0, figures.summary()
    ready_again = figures.ready_again_after()
    assert ready_again is not None and ready_again < 5.0, figures.summary()

    assert figures.acknowledged() > 0
    assert figures.missing == [], figures.missing

    assert "Traceback" not in figures.log, figures.log[-3000:]
    assert "webhooks are answered 503 until it ends" in figures.log
    assert "not committed: OperationalError" in figures.log  # the 15 s batch failed
    assert "maximum number of running instances" not in figures.log  # an overrun is expected
    assert "job evaluate: the database refused (OperationalError: database is locked)" \
        in figures.log, figures.log[-3000:]
