"""Access: who may look and who may change, decided once at start-up (hookwatch/access.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["admin", "viewer"]


@dataclass(frozen=True)
class Access:
    """What the dashboard's guard enforces (dashboard/guard.py).

    admin_token None means open mode: `serve` listens on loopback only, and every person on
    this machine may look and change. Otherwise everything for people needs a token.
    """

    admin_token: str | None = None
    viewer_token: str | None = None
    # Host names hookwatch answers people under, besides IP literals (never rebound: a DNS
    # rebinding attack needs a name of the attacker's).
    hosts: frozenset[str] = frozenset({"localhost"})
    public_origin: str | None = None  # scheme://host[:port] of HOOKWATCH_PUBLIC_URL
    public_badges: bool = False
    sign_in_code: str | None = None  # printed once at start-up; signs in once
    sign_in_until: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.admin_token is None
