"""Requests per second per API client: a token bucket for each (tenant, client).

One integration stuck in a retry loop must not take the server from every other practice.
Each authenticated caller (its client id, or its user for a person at a SMART app) has a bucket
of ``burst`` requests that refills at ``rate`` per second; a request that finds it empty is
answered 429 with ``Retry-After`` (the seconds until a request would pass) before any work is
done, and the client's other requests are unaffected once it slows down. Buckets live in the
process: with ``--workers N`` a client gets up to N times the rate, which the docs say.
"""
from __future__ import annotations

import math
import time
from typing import Callable


class RateLimiter:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least one request")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        # key -> (tokens left, when they were counted); a client's bucket is full again after
        # burst / rate seconds, so an idle one is dropped then and the map holds active clients only.
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self.next_sweep = 0.0

    def retry_after(self, key: tuple[str, str]) -> int | None:
        """Take one request from ``key``'s bucket: None when it may proceed, else the whole
        seconds to wait (for ``Retry-After``). Called on the event loop only, so unlocked."""
        now = self.clock()
        tokens, then = self.buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens >= 1.0:
            self.buckets[key] = (tokens - 1.0, now)
            wait = None
        else:
            self.buckets[key] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / self.rate))
        if now >= self.next_sweep:
            self._sweep(now)
        return wait

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate
        self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < full_after}
        self.next_sweep = now + max(full_after, 1.0)
