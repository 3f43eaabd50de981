"""`hookwatch demo`: hookwatch serve + the bundled test model under a real Cog server + traffic."""

from hookwatch.demo.command import main

__all__ = ["main"]
