"""The logs a prediction page shows: those its state was last given, read from its events.

A prediction's row keeps logs only once it ended other than succeeded
(storage.batch.kept_logs); every webhook's body is stored whole, so while the events are kept
the page reads the logs from them, choosing the event the way the row's state was chosen
(storage.batch: the first terminal event to arrive is final; before it, the highest status,
then the latest by the sender's time). An event without logs leaves the ones before it, as the
row's upsert did.
"""

from __future__ import annotations

from collections.abc import Sequence

from hookwatch.hooks.payload import PayloadError, parse_json, read_prediction
from hookwatch.storage.batch import TERMINAL_RANK, status_rank
from hookwatch.storage.tables import Event


def shown_logs(events: Sequence[Event], kept: str | None) -> str | None:
    """What the page shows: the events' logs in state order, else the row's own (`kept`, for a
    prediction that ended other than succeeded, once its events are pruned)."""
    found = state_logs(events)
    return found if found is not None else kept


def state_logs(events: Sequence[Event]) -> str | None:
    """The logs of the event that last gave the prediction its state, else of the one before
    it, and so on; None when no stored event carried any."""
    ordered = sorted((e for e in events if status_rank(e.status) < TERMINAL_RANK),
                     key=_state_order)
    terminal = [e for e in events if status_rank(e.status) == TERMINAL_RANK]
    if terminal:
        ordered.append(min(terminal, key=lambda e: (e.received_at, e.id or 0)))
    for event in reversed(ordered):
        logs = _logs(event.body)
        if logs is not None:
            return logs
    return None


def _state_order(event: Event) -> tuple[int, float, float, int]:
    """Before a terminal event: the higher status wins, then the later sender time (receipt
    time for unsigned senders), then the later arrival (storage.batch.NewEvent.order_at)."""
    at = event.sent_at if event.sent_at is not None else event.received_at
    return status_rank(event.status), at, event.received_at, event.id or 0


def _logs(body: bytes) -> str | None:
    """The logs as the receiver reads them (capped, newest end kept), from a stored body."""
    try:
        return read_prediction(parse_json(body), {}).get("logs")
    except PayloadError:  # read when accepted; the page must not fail on a row
        return None  # changed since (restored by hand, say)
