"""Refused webhooks, counted by reason in this process: per-minute buckets for the last hour,
and at most one log line per reason a minute.

A wrong secret is otherwise invisible: the sender retries, nothing is stored, and the page
says all is well. The counts are kept in memory, on the hot path (a lock and a few integer
additions per webhook); they start again with the process, which is enough to say "most
webhooks of the last five minutes were refused, and why". Log lines and counts name refusal
codes only, never a header's value or a secret.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

log = logging.getLogger("hookwatch.hooks")

MINUTES = 60  # the buckets kept: one hour
LOG_EVERY = 60.0  # seconds between two log lines of one reason


@dataclass(frozen=True, slots=True)
class Reason:
    key: str  # stable, for /api/status
    label: str  # for people: "bad signature"
    hint: str  # what to check


REASONS = {
    "not_configured": Reason("not_configured", "nothing configured",
                             "set HOOKWATCH_WEBHOOK_SECRETS or HOOKWATCH_INGEST_TOKEN"),
    "bad_signature": Reason("bad_signature", "bad signature",
                            "check HOOKWATCH_WEBHOOK_SECRETS against the sender's signing secret"),
    "wrong_token": Reason("wrong_token", "wrong token",
                          "check HOOKWATCH_INGEST_TOKEN against the sender's bearer token"),
    "no_credentials": Reason("no_credentials", "no signature or token",
                             "the sender signs nothing and sends no bearer token"),
    "stale_timestamp": Reason("stale_timestamp", "stale timestamp",
                              "check the clocks here and at the sender "
                              "(HOOKWATCH_SIGNATURE_TOLERANCE), or old retries"),
    "too_large": Reason("too_large", "body too large", "raise HOOKWATCH_MAX_BODY_BYTES"),
    "too_slow": Reason("too_slow", "body too slow", "a slow or stalled sender"),
    "not_json": Reason("not_json", "not JSON", "the sender's Content-Type is not JSON"),
    "not_a_prediction": Reason("not_a_prediction", "not a prediction",
                               "the body is no Replicate prediction"),
    "wrong_method": Reason("wrong_method", "not a POST", "something GETs the webhook URL"),
    "store_unavailable": Reason("store_unavailable", "database unavailable",
                                "the database refused the write; see the log"),
}

_BY_CODE = {
    "not_configured": "not_configured",
    "invalid_signature": "bad_signature",
    "malformed_signature": "bad_signature",
    "missing_signature_header": "bad_signature",
    "malformed_webhook_id": "bad_signature",
    "signature_not_accepted": "bad_signature",
    "invalid_token": "wrong_token",
    "token_not_accepted": "wrong_token",
    "malformed_authorization": "wrong_token",
    "missing_credentials": "no_credentials",
    "stale_timestamp": "stale_timestamp",
    "future_timestamp": "stale_timestamp",
    "malformed_timestamp": "stale_timestamp",
    "body_too_large": "too_large",
    "body_timeout": "too_slow",
    "unsupported_media_type": "not_json",
    "invalid_json": "not_a_prediction",
    "not_a_prediction": "not_a_prediction",
    "method_not_allowed": "wrong_method",
    "store_unavailable": "store_unavailable",
}


def reason_for(code: str, status: int | None = None) -> Reason:
    """The reason a refusal code belongs to; a code this table does not know is its own."""
    key = _BY_CODE.get(code)
    if key is not None:
        return REASONS[key]
    label = code.replace("_", " ")
    return Reason(code, label, f"HTTP {status}" if status else "see the log")


@dataclass(frozen=True, slots=True)
class Window:
    """Webhooks answered in the last `minutes` minutes (the current one partly)."""

    minutes: int
    received: int  # every answer, refused ones included
    refused: int
    reasons: dict[str, int] = field(default_factory=dict)  # reason key -> count, biggest first
    codes: dict[str, int] = field(default_factory=dict)  # refusal code -> count
    statuses: dict[str, int] = field(default_factory=dict)  # reason key -> its HTTP status

    def reason(self, key: str) -> Reason:
        return REASONS.get(key) or reason_for(key, self.statuses.get(key))

    @property
    def top(self) -> Reason | None:
        """The commonest reason, or None when nothing was refused."""
        return self.reason(next(iter(self.reasons))) if self.reasons else None


class Refusals:
    """Counts of this process's webhook answers, refused ones by code, per minute."""

    def __init__(self, *, configured: bool = True) -> None:
        self.configured = configured  # a secret or a token is set: anything can be received
        self._lock = threading.Lock()
        self._minute = [-1] * MINUTES  # which minute each slot holds
        self._accepted = [0] * MINUTES
        self._refused: list[dict[str, int]] = [{} for _ in range(MINUTES)]
        self._status: dict[str, int] = {}
        self._logged: dict[str, float] = {}  # reason key -> when its last line was written
        self._unlogged: dict[str, dict[str, int]] = {}  # reason key -> codes counted since

    def _slot(self, now: float) -> int:
        minute = int(now // 60)
        slot = minute % MINUTES
        if self._minute[slot] != minute:
            self._minute[slot] = minute
            self._accepted[slot] = 0
            self._refused[slot] = {}
        return slot

    def accepted(self, now: float) -> None:
        with self._lock:
            self._accepted[self._slot(now)] += 1

    def refused(self, status: int, code: str, now: float) -> None:
        reason = reason_for(code, status)
        with self._lock:
            counts = self._refused[self._slot(now)]
            counts[code] = counts.get(code, 0) + 1
            self._status[code] = status
            pending = self._unlogged.setdefault(reason.key, {})
            pending[code] = pending.get(code, 0) + 1
            last = self._logged.get(reason.key)
            if last is not None and 0 <= now - last < LOG_EVERY:
                return
            self._logged[reason.key] = now
            self._unlogged[reason.key] = {}
        total = sum(pending.values())
        codes = ", ".join(f"{n} {c}" for c, n in sorted(pending.items(), key=lambda i: -i[1]))
        if last is None:
            head = "a webhook was refused"
            tail = "; more of these are logged once a minute, with their count"
        else:
            head = f"{total} webhook{'s' if total != 1 else ''} refused in the last " \
                   f"{max(now - last, 0):.0f} s"
            tail = ""
        log.warning("%s: %s (HTTP %d; %s): %s%s", head, reason.label, status, codes,
                    reason.hint, tail)

    def window(self, now: float, minutes: int) -> Window:
        current = int(now // 60)
        accepted = 0
        codes: dict[str, int] = {}
        with self._lock:
            for slot in range(MINUTES):
                if 0 <= current - self._minute[slot] < minutes:
                    accepted += self._accepted[slot]
                    for code, n in self._refused[slot].items():
                        codes[code] = codes.get(code, 0) + n
            status = dict(self._status)
        reasons: dict[str, int] = {}
        statuses: dict[str, int] = {}
        for code, n in codes.items():
            key = reason_for(code).key
            reasons[key] = reasons.get(key, 0) + n
            statuses.setdefault(key, status.get(code, 0))
        refused = sum(codes.values())
        ordered = dict(sorted(reasons.items(), key=lambda i: (-i[1], i[0])))
        return Window(minutes, accepted + refused, refused, ordered,
                      dict(sorted(codes.items(), key=lambda i: (-i[1], i[0]))), statuses)
