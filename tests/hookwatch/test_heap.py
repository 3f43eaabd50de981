"""hookwatch.heap: when the heap is frozen and thawed, and that a thaw frees frozen garbage."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Iterator

import pytest

from hookwatch.heap import SWITCH_INTERVAL, HeapKeeper, next_step


@pytest.fixture
def heap_state() -> Iterator[None]:
    interval = sys.getswitchinterval()
    yield
    gc.unfreeze()
    sys.setswitchinterval(interval)


@pytest.mark.parametrize(("now", "expected"), [
    (5.0, None),  # neither due
    (10.0, "freeze"),
    (3599.0, "freeze"),
    (3600.0, "thaw"),  # a thaw freezes again: never both
])
def test_next_step(now: float, expected: str | None) -> None:
    assert next_step(now, frozen_at=0.0, thawed_at=0.0, freeze_every=10, thaw_every=3600
                     ) == expected


def test_a_freeze_counts_from_the_last_one() -> None:
    assert next_step(25.0, frozen_at=20.0, thawed_at=0.0, freeze_every=10) is None
    assert next_step(30.0, frozen_at=20.0, thawed_at=0.0, freeze_every=10) == "freeze"


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_frozen_garbage_is_freed_by_the_next_thaw(heap_state: None) -> None:
    now = [0.0]
    keeper = HeapKeeper(freeze_every=10, thaw_every=100, clock=lambda: now[0])
    node = _Node()
    gone = weakref.ref(node)
    assert keeper.tick(10.0) == "freeze"
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    assert gone() is not None  # frozen: the collector does not look at it

    assert keeper.tick(15.0) is None
    assert keeper.tick(100.0) == "thaw"
    assert gone() is None
    assert keeper.frozen_at == keeper.thawed_at == 100.0


def test_start_sets_the_switch_interval_and_stop_ends_the_thread(heap_state: None) -> None:
    keeper = HeapKeeper(freeze_every=0.01)
    gc.unfreeze()
    garbage = _Node()
    gone = weakref.ref(garbage)
    del garbage
    keeper.start()
    try:
        # The heap built so far is frozen at once, its garbage collected first.
        assert gc.get_freeze_count() > 0 and gone() is None
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        thread = keeper._thread
        assert thread is not None and thread.is_alive()
    finally:
        keeper.stop()
    assert not thread.is_alive()
