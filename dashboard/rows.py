"""One scope row of the page as display strings, built in Python before the template runs.

A page carries up to thousands of rows and is redrawn every few seconds: formatting here, in
one pass, keeps the template to plain output (still autoescaped) and the render fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from hookwatch.dashboard.picture import Picture, ScopeRow
from hookwatch.dashboard.render import num, pct, rate_class, secs
from hookwatch.dashboard.svg import history_bar, latency_sparkline, sparkline
from hookwatch.dashboard.usage import ScopeUsage, spend
from hookwatch.storage.rates import Counts


@dataclass(slots=True)
class RowView:
    scope: str
    name: str  # user-supplied: printed by the template, which escapes it
    status: str
    cells: Markup  # the figures (5m, 1h, 24h, volume, latency, sparkline, history)


def _rate_cell(counts: Counts) -> str:
    rate = counts.error_rate
    judged = counts.decided
    return (f'<td class="num r-{rate_class(rate)}" title="{counts.failed} failed of {judged}">'
            f"{pct(rate)}</td>")


def _dollars(value: float | None) -> str:
    """Two significant figures at most: a column of estimates, not an invoice."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if value < 0.01:
        return "<$0.01"
    if value < 10:
        return f"${value:.2g}" if value < 1 else f"${value:.1f}"
    return f"${value:,.0f}"


def _spend_cell(usage: ScopeUsage | None, price: float | None) -> str:
    if price is None:
        return ('<td class="num muted" title="no hardware for this scope in '
                '[pricing.scopes]: spend unknown">—</td>')
    hour, day, month = (spend(usage, price, w) for w in ("1h", "24h", "month"))
    return (f'<td class="num" title="at ${price:g}/s; a month at the last 24 h\'s rate">'
            f"{_dollars(hour)} / {_dollars(day)} / {_dollars(month)}</td>")


def _counts(c: Counts) -> tuple[int, int, int, int, int]:
    return (c.succeeded, c.failed, c.canceled, c.aborted, c.other)


_CELLS: dict[tuple[object, ...], tuple[object, Markup]] = {}
_CELLS_MAX = 20_000


def row_view(row: ScopeRow) -> RowView:
    """Numbers and constants only go into `cells`, built here without the template's per-value
    overhead; the scope's name (user text) is left to the template's autoescape. A row whose
    figures are those of an earlier refresh reuses its cells (most scopes, most refreshes)."""
    r = row.reading
    w5, w1, w24 = r.window("5m"), r.window("1h"), r.window("24h")
    spark = tuple(r.spark)
    key = (row.status, row.note, _counts(w5), _counts(w1), _counts(w24), r.latency, spark,
           id(r.days_closed), tuple(r.days_live.items()), r.usage, r.price)
    hit = _CELLS.get(key)
    if hit is not None and hit[0] is r.days_closed:  # the id is still that tuple's
        return RowView(r.scope, r.name, row.status, hit[1])
    p50, p95, q50, q95 = r.latency
    title = f' title="{escape(row.note)}"' if row.note else ""
    cells = (
        f'<td><span class="pill st-{row.status.replace(" ", "-")}"{title}>{row.status}</span></td>'
        f"{_rate_cell(w5)}{_rate_cell(w1)}{_rate_cell(w24)}"
        f'<td class="num" title="{w1.total} in the last hour">{num(w24.total)}</td>'
        f'<td class="num">{secs(p50)} / {secs(p95)}</td>'
        f'<td class="num">{secs(q50)} / {secs(q95)}</td>'
        f"{_spend_cell(r.usage, r.price)}"
        f"<td>{sparkline(spark)}</td>"
        f"<td>{latency_sparkline(r.usage.spark if r.usage else ())}</td>"
        f'<td class="wide">{history_bar(r.days_closed, r.days_live)}</td>'
    )
    markup = Markup(cells)  # noqa: S704
    if len(_CELLS) >= _CELLS_MAX:
        _CELLS.clear()
    _CELLS[key] = (r.days_closed, markup)
    return RowView(r.scope, r.name, row.status, markup)


def clear_memo() -> None:
    """Forget the drawn rows (benchmarks measure drawing them anew)."""
    _CELLS.clear()


def row_groups(picture: Picture) -> dict[str, list[RowView]]:
    """The picture's groups (model, deployment, version), each row ready to print."""
    return {kind: [row_view(row) for row in rows] for kind, rows in picture.groups.items()}
