"""`hookwatch test-notify NAME`: one test message through one configured notifier, right now."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TextIO

from hookwatch.notifiers.base import NotifyError, SendContext
from hookwatch.notifiers.message import AlertMessage, TopError
from hookwatch.notifiers.redact import Redactor
from hookwatch.notifiers.registry import NotifierConfig, build


def test_message(name: str, *, now: float, base_url: str) -> AlertMessage:
    """A realistic-looking alert, clearly marked as a test."""
    return AlertMessage(
        kind="test",
        alert_key=f"hookwatch-test-{name}",
        alert_id=0,
        rule="test-notify",
        rule_kind="error_rate",
        severity="info",
        scope="deployment",
        scope_name="hookwatch/test-notify",
        summary=f"Test notification from hookwatch through notifier '{name}'; nothing is wrong.",
        started_at=now - 300,
        at=now,
        value=0.25,
        threshold=0.2,
        window_seconds=600,
        counts={"succeeded": 60, "failed": 20, "canceled": 0, "aborted": 0},
        top_errors=[TopError("0123456789abcdef", 20, "CUDA out of memory (this is a test)")],
        dashboard_url=f"{base_url}/",
        alert_url=f"{base_url}/",
    )


def run(name: str, notifiers: Mapping[str, NotifierConfig], *, base_url: str, where: str,
        out: TextIO, err: TextIO, now: float) -> int:
    """0: sent; 1: the send failed; 2: no such notifier. `where`: the config file, for the
    message naming what is configured."""
    notifier_config = notifiers.get(name)
    if notifier_config is None:
        known = ", ".join(sorted(notifiers)) or "none"
        print(f"test-notify: no notifier named {name!r} in {where}; configured: {known}", file=err)
        return 2
    redact = Redactor(notifier_config.secrets())
    notifier = build(notifier_config)
    message = test_message(name, now=now, base_url=base_url)
    label = f"{name!r} ({notifier_config.type})"
    started = time.perf_counter()
    try:
        result = notifier.send(message, SendContext(now=now))
    except NotifyError as exc:
        kind = "temporary error (a retry may help)" if exc.retryable else "permanent error"
        status = f" [HTTP {exc.http_status}]" if exc.http_status else ""
        print(f"{label}: {kind}{status}: {redact(exc.detail)}", file=out)
        return 1
    except Exception as exc:
        print(f"{label}: unexpected {type(exc).__name__}: {redact(str(exc))}", file=out)
        return 1
    finally:
        notifier.close()
    elapsed = (time.perf_counter() - started) * 1000
    status = f", HTTP {result.http_status}" if result and result.http_status else ""
    print(f"{label}: OK, test notification sent in {elapsed:.0f} ms{status}", file=out)
    return 0

