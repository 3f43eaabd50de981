"""The serve process's interpreter settings that keep the event loop answering webhooks while
threads build pages: the GIL's switch interval, and what the cycle collector rescans.

Webhooks are answered on the event loop; the page summary, the evaluator and the page requests
run on threads that share its GIL. Measured with four viewers on 20,000 models
(`bench/bench_dashboard.py --serve`), two costs pushed webhook p99 from 18 ms to 60-200 ms:

- CPython hands the GIL to a waiting thread only every `sys.getswitchinterval()` (5 ms by
  default), so the loop, which takes the GIL several times per webhook, waited a slice per
  busy thread each time. At 0.5 ms it waits a tenth as long.
  https://docs.python.org/3/library/sys.html#sys.setswitchinterval
- A full collection scans every tracked object: 80-140 ms with the summary's rows and the
  bucket caches alive, holding the GIL throughout, every few seconds while pages are built.
  Objects that have lived `FREEZE_EVERY` seconds are moved out of its sight (`gc.freeze()`);
  once per `THAW_EVERY` they are put back and collected, so cyclic garbage that was frozen
  is not kept for longer. https://docs.python.org/3/library/gc.html#gc.freeze

The first freeze is at `start`, once the app is built: the imports and the app are most of
the heap, and a full collection over them held the loop 57 ms in the service's first seconds
under load (bench/bench_ingest.py, completed-20: that one pause was the run's p99).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Literal

log = logging.getLogger("hookwatch")

SWITCH_INTERVAL = 0.0005
FREEZE_EVERY = 10.0
THAW_EVERY = 3600.0

Step = Literal["freeze", "thaw"]


def next_step(now: float, *, frozen_at: float, thawed_at: float,
              freeze_every: float = FREEZE_EVERY, thaw_every: float = THAW_EVERY
              ) -> Step | None:
    """What is due at `now` (monotonic seconds), given when each was last done."""
    if now - thawed_at >= thaw_every:
        return "thaw"
    if now - frozen_at >= freeze_every:
        return "freeze"
    return None


class HeapKeeper:
    """Freezes the long-lived heap every `freeze_every` seconds on a thread of its own, and
    thaws and collects it every `thaw_every` (one full pass an hour instead of one every few
    seconds)."""

    def __init__(self, *, freeze_every: float = FREEZE_EVERY, thaw_every: float = THAW_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.freeze_every = freeze_every
        self.thaw_every = thaw_every
        self.clock = clock
        started = clock()
        self.frozen_at = started
        self.thawed_at = started
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: float) -> Step | None:
        step = next_step(now, frozen_at=self.frozen_at, thawed_at=self.thawed_at,
                         freeze_every=self.freeze_every, thaw_every=self.thaw_every)
        if step == "thaw":
            began = time.perf_counter()
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
            log.debug("heap thawed: %d unreachable objects collected in %.0f ms", found,
                      (time.perf_counter() - began) * 1000)
            self.thawed_at = self.frozen_at = now
        elif step == "freeze":
            gc.freeze()
            self.frozen_at = now
        return step

    def start(self) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL)
        gc.collect()  # the start-up garbage goes first: a frozen cycle waits for a thaw
        gc.freeze()
        self.frozen_at = self.clock()
        self._thread = threading.Thread(target=self._run, name="hookwatch-heap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.freeze_every):
            self.tick(self.clock())
