"""Latency histograms packed into their outcome bucket row, and how the databases add them.

A bucket row (`outcome_buckets`, one per resolution, start and scope) carries its scope's
latency bins of every metric in one column, `latency`: a JSON object from the packed index
(the metric's place in LATENCY_METRICS times HIST_BINS, plus the bin) to its count, such as
`{"17":2,"81":1}`. One bin per row cost a terminal webhook some 14 latency rows over 1,000
models, each upserted on its own; packed, its latency rides in the minute and hour outcome
rows it writes anyway, and a fold no longer grows with the bins it meets (bench/README.md).

The upsert adds two objects with `hookwatch_hist_add(old, new)`: on SQLite a function
registered on every connection (`register`), on PostgreSQL a SQL function that migration 0008
creates (`PG_FUNCTION`). NULL means no samples, and adding NULL changes nothing.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import orjson

from hookwatch.storage.rollups import HIST_BINS, LATENCY_METRICS
from hookwatch.storage.rollups import METRIC_OFFSETS as OFFSET

FUNCTION = "hookwatch_hist_add"
K = TypeVar("K", bound=Hashable)

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}(old text, new text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN old IS NULL THEN new WHEN new IS NULL THEN old ELSE (
    SELECT jsonb_object_agg(key, total)::text FROM (
      SELECT key, sum(value::bigint) AS total
      FROM (SELECT * FROM jsonb_each_text(old::jsonb)
            UNION ALL SELECT * FROM jsonb_each_text(new::jsonb)) AS both_sides
      GROUP BY key) AS sums) END
$$"""


def from_bins(table: str, dialect: str) -> str:
    """A statement packing a table of per-bin rows (resolution, start, scope, name, metric,
    bin, count: latency_buckets before migration 0008) into the bucket rows' `latency`; a key
    without an outcome row gets one at zero. For the migration and the benchmarks' builders."""
    agg = ("json_group_object(CAST(k AS TEXT), c)" if dialect == "sqlite"
           else "jsonb_object_agg(k::text, c)::text")
    cases = " ".join(f"WHEN '{m}' THEN {first}" for m, first in OFFSET.items())
    return (
        "INSERT INTO outcome_buckets (resolution, start, scope, name, succeeded, failed, "
        "canceled, aborted, other, predict_time_sum, predict_time_count, latency) "
        f"SELECT resolution, start, scope, name, 0, 0, 0, 0, 0, 0, 0, {agg} FROM ("
        f"SELECT resolution, start, scope, name, (CASE metric {cases} END) + bin AS k, "
        f"SUM(count) AS c FROM {table} WHERE metric IN ({', '.join(repr(m) for m in OFFSET)}) "
        f"AND bin >= 0 AND bin < {HIST_BINS} AND count > 0 "
        "GROUP BY resolution, start, scope, name, metric, bin) AS bins WHERE true "
        "GROUP BY resolution, start, scope, name "
        "ON CONFLICT (resolution, start, scope, name) DO UPDATE SET latency = excluded.latency"
    )


def pack(counts: Mapping[int, int]) -> str | None:
    """Packed index -> count as the column's text; None without samples."""
    if not counts:
        return None
    return orjson.dumps({str(index): count for index, count in counts.items()}).decode()


def unpack(text: str | None) -> dict[str, int]:
    """The column's object (packed index as text -> count); empty for NULL."""
    return orjson.loads(text) if text else {}


def add(old: str | None, new: str | None) -> str | None:
    """`old` plus `new`: the SQLite function, called by the upsert for every row it updates."""
    if old is None:
        return new
    if new is None:
        return old
    total: dict[str, int] = orjson.loads(old)
    for index, count in orjson.loads(new).items():
        total[index] = total.get(index, 0) + count
    return orjson.dumps(total).decode()


def register(connection: Any) -> None:
    """Make `hookwatch_hist_add` known to a sqlite3 connection (before its first upsert)."""
    connection.create_function(FUNCTION, 2, add, deterministic=True)


def bins(text: str | None, metric: str) -> Iterator[tuple[int, int]]:
    """(bin, count) of one metric in a packed column."""
    if not text:
        return
    first = OFFSET[metric]
    for index, count in orjson.loads(text).items():
        b = int(index) - first
        if 0 <= b < HIST_BINS:
            yield b, count


def histograms(rows: Iterable[tuple[K, str | None]], metric: str) -> dict[K, dict[int, int]]:
    """One metric's bins summed per key over (key, packed column) rows; keys without a sample
    of it are absent."""
    found: dict[K, dict[int, int]] = {}
    for key, text in rows:
        for b, count in bins(text, metric):
            histogram = found.setdefault(key, {})
            histogram[b] = histogram.get(b, 0) + int(count)
    return found


def by_metric(text: str | None) -> Iterator[tuple[str, int, int]]:
    """(metric, bin, count) of every metric in a packed column."""
    if not text:
        return
    for index, count in orjson.loads(text).items():
        i = int(index)
        metric = i // HIST_BINS
        if 0 <= metric < len(LATENCY_METRICS):
            yield LATENCY_METRICS[metric], i % HIST_BINS, count
