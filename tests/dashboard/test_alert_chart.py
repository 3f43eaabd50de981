"""The alert page's chart as a pure drawing: gaps where there is no verdict, the threshold at
its height, the transitions marked, nothing unescaped."""

from __future__ import annotations

import re

from hookwatch.dashboard.alert_chart import BOTTOM, HEIGHT, TOP, Series, chart

T0 = 1_800_000_000.0


def test_gaps_threshold_and_marks() -> None:
    points = [(T0 + 60 * i, v) for i, v in enumerate([0.0, 0.1, None, 0.4, 0.5])]
    drawn = str(chart(Series("error rate over 10 min", points, 0.2, True, T0, T0 + 240,
                             [(T0 + 180, "firing"), (T0 + 200, 'x"><script>')])))
    path = re.search(r'<path class="value" d="([^"]*)"', drawn)
    assert path is not None
    assert path.group(1).count("M") == 2  # the None splits the line in two
    line = re.search(r'<line class="threshold" x1="[\d.]+" y1="([\d.]+)"', drawn)
    assert line is not None
    plot = HEIGHT - TOP - BOTTOM
    top = 0.5  # the peak, above 1.5 x the threshold
    assert abs(float(line.group(1)) - (TOP + plot - 0.2 / top * plot)) < 0.1
    assert 'class="mark m-firing"' in drawn
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn
    title = re.search(r"<title>(.*?)</title>", drawn)
    assert title is not None
    assert title.group(1) == "error rate over 10 min: peak 50%, last 50%, threshold 20%"


def test_no_data_still_draws_axes_and_says_so() -> None:
    drawn = str(chart(Series("predictions not finished", [], 1.0, False, T0, T0 + 3600)))
    assert "<title>predictions not finished: no data in this period, threshold 1</title>" in drawn
    assert '<path class="value" d=""/>' in drawn
