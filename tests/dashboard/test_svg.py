"""The inline SVG drawings: shapes from numbers, and user text escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from hookwatch.dashboard.svg import (
    Day,
    badge,
    day_class,
    gaps_defs,
    history_bar,
    sparkline,
    text_width,
)

NASTY = '"><script>alert(1)</script><img src=x onerror=alert(2)>&'
SVG = "{http://www.w3.org/2000/svg}"


def test_sparkline_scales_and_breaks_at_gaps() -> None:
    svg = str(sparkline([0.0, 0.1, None, 0.5, None, None, 0.0]))
    d = re.search(r' d="([^"]*)"', svg)
    assert d is not None
    # Three runs (M), joined within a run by L; a lone point is a dot (h0).
    assert d.group(1).count("M") == 3 and d.group(1).count("L") == 1
    assert d.group(1).count("h0") == 3
    ys = [int(y) for y in re.findall(r"[ML]\d+ (\d+)", d.group(1))]  # tenths of a pixel
    assert ys[0] == 190 and ys[2] == 10  # 0% at the bottom, the peak (50%) at the top
    assert "spark-bad" in svg and "peak 50.0%" in svg
    ET.fromstring(svg)  # well-formed


def test_sparkline_without_data_and_small_rates() -> None:
    empty = str(sparkline([None] * 24))
    assert 'd=""' in empty and "no data" in empty
    small = str(sparkline([0.001] * 24))
    ys = {int(y) for y in re.findall(r"[ML]\d+ (\d+)", small)}
    assert ys == {186}  # on a 5% axis, 0.1% stays near the bottom
    assert "spark-bad" not in small


def test_history_bar_draws_runs_of_days_by_colour() -> None:
    ok, warn, bad = Day(0, 100, 0), Day(0, 98, 2), Day(0, 80, 20)
    days: list[Day | None] = [None, ok, ok, warn, bad, Day(0, 0, 0), ok]
    svg = str(history_bar(days))
    root = ET.fromstring(svg)
    paths = {p.get("class"): p.get("d") for p in root.iter("path")}  # inline: no xmlns
    # Days 1-2 are one run (7 units: two bars and the gap the shared overlay draws between).
    assert paths["h-ok"] == "M4 0h7v16h-7zM24 0h3v16h-3z"
    assert paths["h-warn"] == "M12 0h3v16h-3z"
    assert paths["h-bad"] == "M16 0h3v16h-3z"
    assert "h-none" not in paths  # days without data: the grey strip under the bars
    assert [r.get("class") for r in root.iter("rect")] == ["h-none"]
    assert [u.get("href") for u in root.iter("use")] == ["#hw-gaps"]
    assert "95.60% succeeded" in svg and "worst day 20.0% errors" in svg
    assert [day_class(r) for r in (None, 0.0, 0.0099, 0.01, 0.049, 0.05)] == [
        "none", "ok", "ok", "warn", "warn", "bad"]


def test_history_bar_adds_live_days_to_a_memoized_closed_history() -> None:
    closed = (Day(0, 10, 0),) * 3 + (None,)
    first = str(history_bar(closed))
    assert str(history_bar(closed)) == first  # drawn from the memo, same answer
    live = str(history_bar(closed, {3: Day(0, 5, 5)}))
    paths = {p.get("class"): p.get("d") for p in ET.fromstring(live).iter("path")}
    assert paths == {"h-ok": "M0 0h11v16h-11z", "h-bad": "M12 0h3v16h-3z"}
    assert "87.50% succeeded" in live


def test_gap_overlay_has_one_gap_between_each_pair_of_days() -> None:
    defs = ET.fromstring(str(gaps_defs(4)))
    (path,) = list(defs.iter("path"))
    assert path.get("id") == "hw-gaps"
    assert path.get("d") == "M3 0h1v16h-1zM7 0h1v16h-1zM11 0h1v16h-1z"


def test_badge_escapes_text_and_sizes_to_it() -> None:
    svg = badge(NASTY, "12% errors", "firing")
    root = ET.fromstring(svg)  # still well-formed XML
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts[0] == NASTY[:47] + "…"  # the label, truncated, as text
    assert "<script>" not in svg and "<img" not in svg and "&lt;img src=x onerror=a" in svg
    assert root.get("aria-label") == f"{NASTY[:47]}…: 12% errors"
    assert "#d9352b" in svg  # red for firing
    short, long = badge("a", "ok", "ok"), badge("acme/a-much-longer-name", "ok", "ok")
    width = lambda s: int(ET.fromstring(s).get("width"))  # noqa: E731
    assert width(long) - width(short) == round(text_width("acme/a-much-longer-name") + 10) - round(
        text_width("a") + 10)
    assert 'fill="#9f9f9f"' in badge("x", "no data", "no data")
    assert 'fill="#9f9f9f"' in badge("x", "?", "unknown status")
