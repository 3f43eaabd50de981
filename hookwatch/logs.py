"""The service's log records, made safe to read: control characters escaped in every message.

Installed by the shell on every handler it configures (cli.main's root handler, uvicorn's via
uvicorn_log_config), so a record's text can never hold a newline that starts a forged record
or an ESC sequence for the terminal that shows it (hookwatch.notifiers.controls). Tracebacks
keep their lines, indented, so no line of a record but its first starts at the margin.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from hookwatch.notifiers.controls import escape_controls, escape_for_page

_TRACEBACKS = logging.Formatter()


class EscapeControls(logging.Filter):
    """A handler filter: rewrites the record in place (idempotent, so a record that reaches
    several handlers is escaped once), keeping its args when that suffices, since some
    formatters read them (uvicorn's access log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if escape_controls(message) is not message:
            if isinstance(record.msg, str):
                record.msg = escape_controls(record.msg)
            record.args = _escaped_args(record.args)
            message = record.getMessage()
            if escape_controls(message) is not message:  # an object's str() held them
                record.msg, record.args = escape_controls(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _indented(record.exc_text)
        if record.stack_info:
            record.stack_info = _indented(record.stack_info)
        return True


def _escaped_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(escape_controls(a) if isinstance(a, str) else a for a in args)
    if isinstance(args, Mapping):
        return {k: escape_controls(v) if isinstance(v, str) else v for k, v in args.items()}
    return args


def _indented(text: str) -> str:
    lines = escape_for_page(text).replace("\r", "\\r").split("\n")
    if all(line.startswith("  ") for line in lines):  # indented already
        return "\n".join(lines)
    return "\n".join("  " + line for line in lines)


def install(handlers: list[logging.Handler] | None = None) -> None:
    """Add the filter to these handlers (default: the root logger's), once each."""
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(f, EscapeControls) for f in handler.filters):
            handler.addFilter(EscapeControls())


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with the filter on each of its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["escape_controls"] = {"()": EscapeControls}
    for handler in config.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", []), "escape_controls"]
    return config
