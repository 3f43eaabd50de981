"""Inline SVG drawings: the 24 h sparkline, the 90-day history bar and the shields-style badge.

Pure functions from numbers and strings to `Markup`; every piece of text a user supplied goes
through `markupsafe.escape`, which also escapes quotes, so it is safe in SVG text and attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from hookwatch.notifiers.controls import escape_controls

SPARK_WIDTH = 92
SPARK_HEIGHT = 20
SPARK_FLOOR = 0.05
"""The sparkline's y axis goes at least to 5%, so a 0.2% blip does not look like an outage."""
_UNIT = 10  # path coordinates in tenths of a pixel: whole numbers, cheap to print
_SPARK_MEMO: dict[tuple[float | None, ...], Markup] = {}
_LATENCY_MEMO: dict[tuple[float | None, ...], Markup] = {}


def clear_memos(*, history: bool = True) -> None:
    """Forget memoized drawings (benchmarks measure the cost of drawing them anew)."""
    _SPARK_MEMO.clear()
    _LATENCY_MEMO.clear()
    if history:
        _MEMO.clear()


def sparkline(values: Sequence[float | None]) -> Markup:
    """Error rates (0..1, None = no verdict), oldest first, as a small line; gaps where None.

    Drawn for every scope on every refresh, so it is plain string building (numbers and
    constants only in the markup) and memoized on the values: an idle scope's line is reused.
    """
    key = tuple(values)
    hit = _SPARK_MEMO.get(key)
    if hit is not None:
        return hit
    known = [v for v in key if v is not None]
    top = max(SPARK_FLOOR, *known) if known else SPARK_FLOOR
    if known:
        peak = max(known)
        title = f"error rate: peak {peak:.1%}, last {known[-1]:.1%}"
    else:
        peak = 0.0
        title = "error rate: no data"
    cls = "spark spark-bad" if peak >= 0.2 else "spark"
    svg = _spark_svg(key, top, cls, title)
    if len(_SPARK_MEMO) >= 20_000:
        _SPARK_MEMO.clear()
    _SPARK_MEMO[key] = svg
    return svg


def latency_sparkline(values: Sequence[float | None]) -> Markup:
    """Hourly predict p95 in seconds (None = no predictions), oldest first, scaled to its own
    peak: the shape shows a slowdown; the title gives the numbers. Memoized like sparkline."""
    key = tuple(values)
    hit = _LATENCY_MEMO.get(key)
    if hit is not None:
        return hit
    known = [v for v in key if v is not None]
    top = max(known) if known and max(known) > 0 else 1.0
    title = (f"predict p95 by hour: peak {top:.3g} s, last {known[-1]:.3g} s" if known
             else "predict p95 by hour: no data")
    svg = _spark_svg(key, top, "lspark", title)
    if len(_LATENCY_MEMO) >= 20_000:
        _LATENCY_MEMO.clear()
    _LATENCY_MEMO[key] = svg
    return svg


def _spark_svg(key: tuple[float | None, ...], top: float, cls: str, title: str) -> Markup:
    n = len(key)
    step = SPARK_WIDTH * _UNIT // max(n - 1, 1)
    scale = (SPARK_HEIGHT - 2) * _UNIT / top
    base = (SPARK_HEIGHT - 1) * _UNIT
    parts: list[str] = []
    pen_down = False
    for i, value in enumerate(key):
        if value is None:
            pen_down = False
            continue
        y = int(base - (value if value < top else top) * scale + 0.5)
        if pen_down:
            parts.append(f"L{i * step} {y}")
        else:
            # A lone point still shows: a zero-length segment with a round cap is a dot.
            parts.append(f"M{i * step} {y}h0")
            pen_down = True
    width = (n - 1) * step
    # Safe: numbers and constants only (cls and title are built from numbers here).
    return Markup(  # noqa: S704
        f'<svg class="{cls}" viewBox="0 0 {width} {SPARK_HEIGHT * _UNIT}" '
        f'width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" role="img"><title>{title}</title>'
        f'<path d="{"".join(parts)}"/></svg>'
    )


@dataclass(frozen=True, slots=True)
class Day:
    """One day of a scope's history: its outcome counts (error rate = failed / (ok + failed))."""

    start: int
    succeeded: int
    failed: int

    @property
    def rate(self) -> float | None:
        judged = self.succeeded + self.failed
        return self.failed / judged if judged else None


DAY_WARN = 0.01
DAY_BAD = 0.05
"""A day is amber from 1% errors and red from 5%: status-page convention, not an alert rule."""


def day_class(rate: float | None) -> str:
    if rate is None:
        return "none"
    if rate >= DAY_BAD:
        return "bad"
    if rate >= DAY_WARN:
        return "warn"
    return "ok"


_BAR, _GAP, _HEIGHT = 3, 1, 16
_STEP = _BAR + _GAP
GAPS_ID = "hw-gaps"


def gaps_defs(days: int = 90) -> Markup:
    """Defined once per page: the 1-unit gaps every history bar draws over its runs of days
    (`<use>`), so a bar is a few rectangles, not one per day."""
    d = "".join(f"M{i * _STEP + _BAR} 0h{_GAP}v{_HEIGHT}h-{_GAP}z" for i in range(days - 1))
    # Safe: numbers and constants only.
    return Markup(  # noqa: S704
        f'<svg class="defs" width="0" height="0" aria-hidden="true">'
        f'<path id="{GAPS_ID}" d="{d}"/></svg>'
    )


@dataclass(frozen=True, slots=True)
class _Bars:
    """A history's runs of same-coloured days, and the totals its title needs."""

    ok: str = ""
    warn: str = ""
    bad: str = ""
    judged: int = 0
    failed: int = 0
    worst: float = -1.0

    def plus(self, other: _Bars) -> _Bars:
        return _Bars(self.ok + other.ok, self.warn + other.warn, self.bad + other.bad,
                     self.judged + other.judged, self.failed + other.failed,
                     max(self.worst, other.worst))


def _run(first: int, last: int) -> str:
    width = (last - first + 1) * _STEP - _GAP
    return f"M{first * _STEP} 0h{width}v{_HEIGHT}h-{width}z"


def _bars(days: Iterable[tuple[int, Day | None]]) -> _Bars:
    runs: dict[str, list[str]] = {"ok": [], "warn": [], "bad": []}
    judged = failed = 0
    worst = -1.0
    current, first, last = "", -1, -1
    for i, day in days:
        n = day.succeeded + day.failed if day is not None else 0
        cls = ""
        if n:
            assert day is not None
            rate = day.failed / n
            cls = day_class(rate)
            judged += n
            failed += day.failed
            if rate > worst:
                worst = rate
        if cls != current or i != last + 1:
            if current:
                runs[current].append(_run(first, last))
            current, first = cls, i
        last = i
    if current:
        runs[current].append(_run(first, last))
    return _Bars("".join(runs["ok"]), "".join(runs["warn"]), "".join(runs["bad"]),
                 judged, failed, worst)


_MEMO: dict[int, tuple[Sequence[Day | None], _Bars]] = {}
_MEMO_MAX = 50_000


def _closed_bars(days: Sequence[Day | None]) -> _Bars:
    """Bars of an immutable history (a tuple), memoized by identity: the dashboard's closed
    days are one shared tuple per scope until the next day closes, so each is drawn once a
    day instead of on every refresh. The tuple is kept in the memo, so its id stays its own."""
    if not isinstance(days, tuple):
        return _bars(enumerate(days))
    hit = _MEMO.get(id(days))
    if hit is not None and hit[0] is days:
        return hit[1]
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    bars = _bars(enumerate(days))
    _MEMO[id(days)] = (days, bars)
    return bars


def history_bar(days: Sequence[Day | None], live: Mapping[int, Day] | None = None) -> Markup:
    """One bar per day, oldest first, on a grey strip (days without data): a rectangle per
    run of same-coloured days, cut into days by the page's shared gaps (`gaps_defs`). `live`
    adds the days at its indexes (today's bucket, still open). Plain string building: only
    numbers go into the markup."""
    bars = _closed_bars(days)
    if live:
        bars = bars.plus(_bars(live.items()))
    width = len(days) * (_BAR + _GAP) - _GAP
    if bars.judged:
        title = f"{len(days)} days: {1 - bars.failed / bars.judged:.2%} succeeded"
        if bars.worst > 0:
            title += f", worst day {bars.worst:.1%} errors"
    else:
        title = f"{len(days)} days: no data"
    body = "".join(
        f'<path class="h-{cls}" d="{rects}"/>'
        for cls, rects in (("ok", bars.ok), ("warn", bars.warn), ("bad", bars.bad))
        if rects
    )
    # Safe: numbers and constants only.
    return Markup(  # noqa: S704
        f'<svg class="history" viewBox="0 0 {width} {_HEIGHT}" preserveAspectRatio="none" '
        f'role="img"><title>{title}</title>'
        f'<rect class="h-none" width="{width}" height="{_HEIGHT}"/>{body}'
        f'<use href="#{GAPS_ID}" class="h-gap"/></svg>'
    )


# Verdana 11px advance widths (the font shields.io measures with), for ASCII; others ~7.
_WIDTHS = dict(
    zip(
        " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
        "abcdefghijklmnopqrstuvwxyz{|}~",
        (
            3.87, 4.33, 5.05, 9.0, 7.0, 11.84, 7.99, 2.95, 4.99, 4.99, 7.0, 9.0, 4.0, 4.99, 4.0,
            4.99, *([7.0] * 10), 4.99, 4.99, 9.0, 9.0, 9.0, 6.0, 11.0, 7.52, 7.54, 7.68, 8.48,
            6.96, 6.32, 8.53, 8.27, 4.63, 5.0, 7.62, 6.12, 9.27, 8.23, 8.66, 6.63, 8.66, 7.65,
            7.52, 6.78, 8.05, 7.52, 10.88, 7.54, 6.77, 7.54, 4.99, 4.99, 4.99, 9.0, 7.0, 7.0,
            6.61, 6.85, 5.73, 6.85, 6.55, 3.87, 6.85, 6.96, 3.02, 3.79, 6.51, 3.02, 10.7, 6.96,
            6.68, 6.85, 6.85, 4.69, 5.73, 4.33, 6.96, 6.51, 8.98, 6.51, 6.51, 5.78, 6.98, 4.99,
            6.98, 9.0,
        ),
        strict=True,
    )
)

BADGE_COLOURS = {
    "ok": "#2e9e44",
    "pending": "#d89614",
    "firing": "#d9352b",
    "silenced": "#6c7a89",
    "unwatched": "#9f9f9f",  # grey: its rate may be red, but no rule checks it
    "no data": "#9f9f9f",
}
BADGE_MAX_LABEL = 48


def text_width(text: str) -> float:
    return sum(_WIDTHS.get(ch, 7.0) for ch in text)


def badge(label: str, message: str, status: str) -> str:
    """A flat shields-style badge as a standalone SVG document (colour from the status)."""
    label = escape_controls(label)  # XML 1.0 allows no C0 control but tab, LF and CR
    if len(label) > BADGE_MAX_LABEL:
        label = label[: BADGE_MAX_LABEL - 1] + "…"
    colour = BADGE_COLOURS.get(status, BADGE_COLOURS["no data"])
    lw = round(text_width(label) + 10)
    mw = round(text_width(message) + 10)
    total = lw + mw
    return str(
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
            'aria-label="{label}: {message}"><title>{label}: {message}</title>'
            '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
            'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
            '<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
            '<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/>'
            '<rect x="{lw}" width="{mw}" height="20" fill="{colour}"/>'
            '<rect width="{total}" height="20" fill="url(#s)"/></g>'
            '<g fill="#fff" text-anchor="middle" '
            'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
            '<text x="{lx}" y="15" fill="#010101" fill-opacity=".3">{label}</text>'
            '<text x="{lx}" y="14">{label}</text>'
            '<text x="{mx}" y="15" fill="#010101" fill-opacity=".3">{message}</text>'
            '<text x="{mx}" y="14">{message}</text></g></svg>'
        ).format(
            total=total, lw=lw, mw=mw, colour=colour, lx=lw / 2, mx=lw + mw / 2,
            label=label, message=message,
        )
    )
