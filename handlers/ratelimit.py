"""A per-person token bucket, in process memory.

``allow(key)`` spends one token of ``key``'s bucket (``burst`` tokens, refilled at
``per_minute`` a minute) and returns 0, or the seconds to wait when the bucket is empty.
One service instance holds one set of buckets: with N instances a person gets up to N
times the rate, which is fine for a limit that only guards the CPU-bound query embedding.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable

MAX_KEYS = 100_000  # idle buckets are forgotten beyond this many people


class RateLimiter:
    def __init__(
        self,
        per_minute: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, int(per_minute)))
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> int:
        """0 if allowed (a token is spent), else whole seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > MAX_KEYS:
                    self._forget_full(now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.rate))

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled completely carries no information.
        full = [
            k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
