"""Token buckets, one per caller (a client id, a user name, or the address of someone unknown):
each holds up to `burst` tokens and refills at `rate` per second; a request takes one.

`take` says how long to wait when the bucket is empty, and whether this is the first refusal since
the bucket last had a token (so a flood is audited once, not once per request). Buckets idle long
enough to be full again are forgotten. Pure and synchronous: one event loop owns it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

_SWEEP_EVERY = 1024


@dataclass
class _Bucket:
    tokens: float
    at: float
    refusing: bool = False


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0
    first_refusal: bool = False


class RateLimiter:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._takes = 0

    def take(self, caller: str) -> Verdict:
        now = self._clock()
        bucket = self._buckets.get(caller) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[caller] = bucket
        self._sweep(now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.refusing = False
            return Verdict(True)
        first, bucket.refusing = not bucket.refusing, True
        return Verdict(False, max(1, math.ceil((1.0 - bucket.tokens) / self.rate)), first)

    def _sweep(self, now: float) -> None:
        self._takes += 1
        if self._takes % _SWEEP_EVERY:
            return
        full_after = self.burst / self.rate
        for caller in [c for c, b in self._buckets.items() if now - b.at > full_after]:
            del self._buckets[caller]
