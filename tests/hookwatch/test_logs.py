"""hookwatch.logs and notifiers.controls: every record's text made safe, nothing else changed."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest

from hookwatch.logs import EscapeControls, uvicorn_log_config
from hookwatch.notifiers.controls import escape_controls, escape_for_page

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def logged(emit: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(EscapeControls())
    log = logging.getLogger("test.hookwatch.logs")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        emit(log)  # type: ignore[operator]
    finally:
        log.removeHandler(handler)
    return stream.getvalue()


def test_a_forged_record_stays_inside_its_line() -> None:
    name = "m\n2026-01-01 00:00:00,000 ERROR hookwatch: FORGED\x1b[31m"
    text = logged(lambda log: log.info("alert on model %s: %s", name, "firing"))
    assert text.count("\n") == 1
    assert "m\\n2026-01-01 00:00:00,000 ERROR hookwatch: FORGED\\x1b[31m: firing" in text


def test_clean_records_are_untouched_and_args_survive() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %d", ("a\x1b", 5), None)
    assert EscapeControls().filter(record)
    assert record.args == ("a\\x1b", 5) and record.getMessage() == "a\\x1b 5"
    clean = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", ("ok",), None)
    EscapeControls().filter(clean)
    assert clean.args == ("ok",)  # formatters that read args (uvicorn's access log) keep them


def test_an_object_whose_str_holds_controls_is_flattened() -> None:
    class Evil:
        def __str__(self) -> str:
            return "x\ny"

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "got %s", (Evil(),), None)
    EscapeControls().filter(record)
    assert record.getMessage() == "got x\\ny"


def test_a_traceback_keeps_its_lines_indented_under_the_record() -> None:
    def boom(log: logging.Logger) -> None:
        try:
            raise ValueError("bad\n2026-01-01 00:00:00,000 ERROR hookwatch: FORGED")
        except ValueError:
            log.exception("failed")

    lines = logged(boom).splitlines()
    assert lines[0].endswith("failed") and lines[1] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in lines[1:])
    assert any("FORGED" in line for line in lines)


def test_the_filter_is_idempotent() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "a\nb", None, None)
    record.exc_text = "Traceback\nValueError: x"
    EscapeControls().filter(record)
    EscapeControls().filter(record)
    assert record.getMessage() == "a\\nb" and record.exc_text == "  Traceback\n  ValueError: x"


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain", "plain"), ("a\nb\tc\rd", "a\\nb\\tc\\rd"), ("\x1b[2J", "\\x1b[2J"),
    ("\x9b\x7f\x00", "\\x9b\\x7f\\x00"), ("\u202eabc\u2028", "\\u202eabc\\u2028"),
    ("back\\slash é 🙂", "back\\slash é 🙂"),
])
def test_escape_controls(raw: str, shown: str) -> None:
    assert escape_controls(raw) == shown
    assert escape_controls(shown) == shown


def test_pages_keep_their_lines() -> None:
    assert escape_for_page("a\nb\r\tc\x1bd") == "a\nb\r\tc\\x1bd"


def test_uvicorn_handlers_get_the_filter() -> None:
    config = uvicorn_log_config()
    assert all("escape_controls" in h["filters"] for h in config["handlers"].values())
    logging.config.dictConfig(config)  # it loads
