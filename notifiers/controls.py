"""Control characters in sender-controlled text, made visible: newlines, ESC and the like.

A sender controls a prediction's model, deployment, version, error and logs. Written raw, a
newline and a timestamp forge a record in hookwatch's own log, an ESC sequence drives the
terminal that reads it, and both reach pages and on-call messages. Every human-facing output
escapes them where it writes (the log's filter, hookwatch.logs; the notification and page
templates' finalize), so the stored data stays exactly what was sent.

Escaped: C0 and C1 controls and DEL (Unicode category Cc), the line and paragraph separators
(U+2028, U+2029) and the bidirectional overrides and isolates, which reorder what a reader sees
(https://unicode.org/reports/tr9/, CVE-2021-42574). A backslash is left alone, so escaping is
idempotent; "\\n" in the output may therefore have been sent as those two characters.
"""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_ALL = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
_PAGE = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
"""Pages keep tab, newline and carriage return: HTML whitespace, and a log's lines."""
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """Every control character as a visible escape (\\n, \\x1b, \\u202e): for one-line text,
    a log record, a notification field."""
    if _ALL.search(text) is None:  # the common case costs one scan
        return text
    return _ALL.sub(_visible, text)


def escape_for_page(text: str) -> str:
    """escape_controls, but tab, newline and carriage return stay (a <pre> shows a log's lines;
    anywhere else HTML reads them as spaces)."""
    if _PAGE.search(text) is None:
        return text
    return _PAGE.sub(_visible, text)
