"""The alert page's chart: the measured value over time against the rule's threshold, with the
alert's transitions marked. A series from the scope's minute buckets (or the transitions' own
values), then a pure drawing of it as inline SVG: numbers and constants only in the markup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from markupsafe import Markup, escape
from sqlalchemy import Connection

from hookwatch.alerts.rules import BurnRateRule, ErrorRateRule, NoTrafficRule, Rule
from hookwatch.storage.rates import MINUTE, history
from hookwatch.storage.tables import Alert, AlertTransition

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 26  # room for the axis labels
BEFORE = 3600.0  # the chart starts this long before the alert went pending or fired
AFTER = 1800.0  # and ends this long after it resolved (or now)
LONGEST = 86400.0  # minute buckets are kept two days (storage.prune); a day is plenty


@dataclass(frozen=True, slots=True)
class Series:
    label: str  # "error rate over 10 min"
    points: list[tuple[float, float | None]]  # (time, value), oldest first; None: no verdict
    threshold: float | None
    percent: bool
    start: float
    end: float
    marks: list[tuple[float, str]] = field(default_factory=list)  # (time, state it went to)


def span(alert: Alert, now: float) -> tuple[float, float]:
    """From an hour before this episode began to half an hour after it ended (or now)."""
    began = min(alert.since, alert.fired_at if alert.fired_at is not None else alert.since)
    end = min(now, alert.resolved_at + AFTER) if alert.resolved_at is not None else now
    return max(began - BEFORE, end - LONGEST), end


def _rolling(conn: Connection, alert: Alert, start: float, end: float, window: float,
             ) -> list[tuple[int, int, int]]:
    """(minute start, failed, decided) over `window` ending with each minute of [start, end]."""
    width = max(1, round(window / MINUTE))
    points = history(conn, scope=alert.scope, name=alert.name, resolution=MINUTE,
                     since=start - (width - 1) * MINUTE, now=end)
    out = []
    failed = decided = 0
    for i, point in enumerate(points):
        failed += point.counts.failed
        decided += point.counts.decided
        if i >= width:
            gone = points[i - width].counts
            failed -= gone.failed
            decided -= gone.decided
        if i >= width - 1:
            out.append((point.start + MINUTE, failed, decided))
    return out


def _minutes(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 and seconds % 3600 == 0 \
        else f"{seconds / 60:g} min"


def series(conn: Connection, alert: Alert, rule: Rule | None,
           transitions: Sequence[AlertTransition], now: float) -> Series:
    start, end = span(alert, now)
    marks = [(t.at, t.to_state) for t in transitions
             if start <= t.at <= end and t.to_state != t.from_state]
    if isinstance(rule, ErrorRateRule | BurnRateRule) or (
            rule is None and alert.rule_kind in ("error_rate", "burn_rate")):
        window, threshold = 600.0, alert.threshold
        if isinstance(rule, ErrorRateRule):
            window = rule.window
        elif isinstance(rule, BurnRateRule):
            # The fastest pair's short window, against the error rate that burns at its factor.
            pair = rule.burn_windows[0]
            window, threshold = pair.short, (1.0 - rule.slo) * pair.factor
        points: list[tuple[float, float | None]] = [
            (at, failed / decided if decided else None)
            for at, failed, decided in _rolling(conn, alert, start, end, window)
        ]
        return Series(f"error rate over {_minutes(window)}", points, threshold, True, start,
                      end, marks)
    if isinstance(rule, NoTrafficRule):
        points = [(at, float(decided)) for at, _f, decided in
                  _rolling(conn, alert, start, end, rule.window)]
        return Series(f"finished predictions over {_minutes(rule.window)}", points, None,
                      False, start, end, marks)
    # stuck (and anything else): the values the evaluator recorded at each transition.
    steps = sorted((t.at, t.value) for t in transitions if start <= t.at <= end)
    if alert.value is not None:
        steps.append((end, alert.value))
    label = "predictions not finished" if alert.rule_kind == "stuck" else "value at each change"
    return Series(label, steps, alert.threshold, False, start, end, marks)


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}%" if value >= 0.1 or value == 0 else f"{value * 100:.1f}%"
    return f"{value:g}"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M")


def chart(s: Series) -> Markup:
    known = [v for _t, v in s.points if v is not None]
    top = max([*known, (s.threshold or 0) * 1.5, 0.05 if s.percent else 1.0])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    length = max(s.end - s.start, 1.0)

    def x(t: float) -> float:
        return LEFT + (min(max(t, s.start), s.end) - s.start) / length * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - min(v, top) / top * plot_h

    parts = [f'<line class="axis" x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" '
             f'y2="{y(0):.1f}"/>',
             f'<text class="tick" x="{LEFT - 4}" y="{y(0) + 4:.1f}">{_fmt(0, s.percent)}</text>',
             f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}">{_fmt(top, s.percent)}</text>',
             f'<text class="tick start" x="{LEFT}" y="{HEIGHT - 6}">{_clock(s.start)}</text>',
             f'<text class="tick end" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}">{_clock(s.end)} UTC'
             "</text>"]
    for at, to_state in s.marks:
        state = escape(to_state)
        parts.append(f'<line class="mark m-{state}" x1="{x(at):.1f}" y1="{TOP}" '
                     f'x2="{x(at):.1f}" y2="{TOP + plot_h}"><title>{state} at {_clock(at)} '
                     "UTC</title></line>")
    if s.threshold is not None:
        parts.append(f'<line class="threshold" x1="{LEFT}" y1="{y(s.threshold):.1f}" '
                     f'x2="{WIDTH - RIGHT}" y2="{y(s.threshold):.1f}"/>'
                     f'<text class="tick threshold-label" x="{WIDTH - RIGHT - 2}" '
                     f'y="{y(s.threshold) - 4:.1f}">threshold {_fmt(s.threshold, s.percent)}'
                     "</text>")
    path: list[str] = []
    pen = False
    for at, value in s.points:
        if value is None:
            pen = False
            continue
        path.append(f"{'L' if pen else 'M'}{x(at):.1f} {y(value):.1f}{'' if pen else 'h0'}")
        pen = True
    parts.append(f'<path class="value" d="{"".join(path)}"/>')
    if known:
        title = (f"{s.label}: peak {_fmt(max(known), s.percent)}, last "
                 f"{_fmt(known[-1], s.percent)}")
    else:
        title = f"{s.label}: no data in this period"
    if s.threshold is not None:
        title += f", threshold {_fmt(s.threshold, s.percent)}"
    return Markup(  # noqa: S704 - numbers, constants and our own labels only
        f'<svg class="alert-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img">'
        f'<title>{title}</title>{"".join(parts)}</svg>'
    )
