"""The demo's console output: plain lines on stdout, progress lines stamped with elapsed time."""

from __future__ import annotations


def say(message: str) -> None:
    """Print one line now (flushed: the demo's output is often piped or tailed)."""
    print(message, flush=True)


def at(elapsed: float, message: str) -> str:
    """A progress line stamped with the seconds since the traffic began."""
    return f"[{elapsed:5.0f}s] {message}"
