"""Wrong sign-in attempts per client: a token bucket, so guessing a token stays slow.

Each client (its address; behind a proxy on this host, uvicorn takes it from X-Forwarded-For)
may get `attempts` tokens wrong at once, then one more every `refill` seconds. Only failures
spend; while a client's bucket is empty, every token it presents is refused with 429 and
Retry-After, right or wrong, or the answer would tell a guess that hit.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass
class _Bucket:
    level: float
    at: float


class SignInLimiter:
    def __init__(self, *, attempts: int = 10, refill: float = 30.0, max_clients: int = 10_000):
        self.attempts, self.refill, self.max_clients = attempts, refill, max_clients
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _level(self, client: str, now: float) -> float:
        bucket = self._buckets.get(client)
        if bucket is None:
            return float(self.attempts)
        return min(float(self.attempts), bucket.level + max(0.0, now - bucket.at) / self.refill)

    def retry_after(self, client: str, *, now: float) -> int:
        """Seconds until this client may try again; 0 when it may now."""
        with self._lock:
            level = self._level(client, now)
        if level >= 1.0:
            return 0
        return max(1, math.ceil((1.0 - level) * self.refill))

    def failed(self, client: str, *, now: float) -> None:
        with self._lock:
            level = self._level(client, now)
            if client not in self._buckets and len(self._buckets) >= self.max_clients:
                # Forget the clients that have waited longest: their buckets are the fullest.
                for stale in sorted(self._buckets, key=lambda c: self._buckets[c].at)[
                        : self.max_clients // 10]:
                    del self._buckets[stale]
            self._buckets[client] = _Bucket(max(0.0, level - 1.0), now)
