"""An hour of samples in memory, and the rates and series the dashboard draws from them. Pure: no I/O.

A sample holds totals (each topic's end offset, each group's lag, the outbox backlog); rates are
differences between samples. An end offset that goes down (the embedded broker restarted and forgot
its log) counts as no traffic, not as negative traffic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class Sample:
    at: datetime
    reachable: bool
    topic_ends: dict[str, int] = field(default_factory=dict)
    group_lags: dict[str, int] = field(default_factory=dict)  # "group topic" → lag
    backlog: int | None = None


class Samples:
    def __init__(self, keep: int) -> None:
        self._ring: deque[Sample] = deque(maxlen=max(keep, 2))

    def add(self, sample: Sample) -> None:
        self._ring.append(sample)

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def latest(self) -> Sample | None:
        return self._ring[-1] if self._ring else None

    def per_minute(self, topics: Iterable[str], window_s: float = RATE_WINDOW_S) -> float | None:
        """Records written per minute to these topics over about the last `window_s` (None: too few samples)."""
        reachable = [s for s in self._ring if s.reachable]
        if len(reachable) < 2:
            return None
        latest = reachable[-1]
        earlier = [s for s in reachable[:-1] if (latest.at - s.at).total_seconds() <= window_s] or reachable[-2:-1]
        return _rate(earlier[0], latest, list(topics))

    def rate_series(self, topics: Iterable[str]) -> list[float]:
        """Records per minute between each pair of consecutive samples, oldest first."""
        names = list(topics)
        return [_rate(a, b, names) if a.reachable and b.reachable else 0.0 for a, b in pairwise(self._ring)]

    def lag_series(self, key: str) -> list[int]:
        """A group's lag on a topic ("group topic") at each sample, oldest first (0 where unknown)."""
        return [s.group_lags.get(key, 0) for s in self._ring]

    def backlog_series(self) -> list[int]:
        return [s.backlog or 0 for s in self._ring]


def _rate(a: Sample, b: Sample, topics: list[str]) -> float:
    seconds = (b.at - a.at).total_seconds()
    if seconds <= 0:
        return 0.0
    written = sum(max(b.topic_ends.get(t, 0) - a.topic_ends.get(t, 0), 0) for t in topics)
    return written * 60.0 / seconds
