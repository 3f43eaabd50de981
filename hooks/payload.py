"""Tolerant reading of a prediction body: Replicate's API shape and a Cog server's own.

Unknown keys are kept (the raw body is stored as received); status is an open string;
timestamps carry 0 to 9 fractional digits and `Z` or `+00:00`; anything optional may be absent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

MAX_LABEL = 256
MAX_ERROR = 8 * 1024
MAX_LOGS = 8 * 1024
# Longer than any real run, short enough that seconds * 1000 stays finite in the rollups.
MAX_SECONDS = 1e8
_STATUS = re.compile(r"^[a-z][a-z_]{0,31}$")
_ID_CHARS = re.compile(r"^[\x21-\x7e]{1,256}$")


class PayloadError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def parse_json(body: bytes) -> Any:
    """orjson for speed; the standard library for what orjson refuses but is still JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PayloadError("invalid_json", "the body is not valid UTF-8 JSON") from None


def parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _label(doc: Mapping[str, Any], key: str, query: Mapping[str, str]) -> str | None:
    value = doc.get(key)
    if value is None:
        value = query.get(key) or None
        where = "query parameter"
    else:
        where = "field"
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError("not_a_prediction", f"{where} '{key}' must be a string")
    if len(value) > MAX_LABEL:
        raise PayloadError("not_a_prediction", f"{where} '{key}' is over {MAX_LABEL} characters")
    return clean(value)


def clean(text: str) -> str:
    """Text every database stores: no NUL (PostgreSQL refuses it in text) and no lone
    surrogate (JSON's "\\ud800" parses, but it cannot be encoded as UTF-8)."""
    if text.isascii():
        return text.replace("\x00", "\ufffd") if "\x00" in text else text
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").replace(
        "\x00", "\ufffd"
    )


def _text(value: Any, limit: int, tail: bool = False) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=str)
        except (RecursionError, ValueError):  # nesting deeper than Python's recursion limit
            text = f"<{type(value).__name__} too deeply nested to show>"
    return clean(text[-limit:] if tail else text[:limit])


def _seconds(value: Any) -> float | None:
    """A duration, or None when absent or absurd: negative, not finite, or over MAX_SECONDS."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer literal too large for a float
        return None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        return None
    return seconds


# Cog's server puts this before a prediction's error, and a failure that passes through both
# its runner and its worker gets it twice ("Prediction failed: Prediction failed: ...").
_COG_PREFIX = "Prediction failed: "


def _error(value: Any) -> str | None:
    text = _text(value, MAX_ERROR)
    while text is not None and text.startswith(_COG_PREFIX * 2):
        text = text[len(_COG_PREFIX):]
    return text


def read_prediction(doc: Any, query: Mapping[str, str]) -> dict[str, Any]:
    """The fields hookwatch tracks, from a parsed body; PayloadError when it is no prediction."""
    if not isinstance(doc, dict):
        raise PayloadError("not_a_prediction", "the body must be a JSON object")
    pid = doc.get("id")
    if not isinstance(pid, str) or not _ID_CHARS.match(pid):
        raise PayloadError(
            "not_a_prediction", "'id' must be a string of 1-256 printable characters"
        )
    status = doc.get("status")
    if not isinstance(status, str) or not _STATUS.match(status):
        raise PayloadError(
            "not_a_prediction", "'status' must be a lower-case word such as 'succeeded'"
        )
    metrics = doc.get("metrics")
    predict_time = _seconds(metrics.get("predict_time") if isinstance(metrics, dict) else None)
    return {
        "prediction_id": pid,
        "status": status,
        "model": _label(doc, "model", query),
        "deployment": _label(doc, "deployment", query),
        "version": _label(doc, "version", query),
        "error": _error(doc.get("error")),
        "logs": _text(doc.get("logs"), MAX_LOGS, tail=True),
        "created_at": parse_time(doc.get("created_at")),
        "started_at": parse_time(doc.get("started_at")),
        "completed_at": parse_time(doc.get("completed_at")),
        "predict_time": predict_time,
    }
