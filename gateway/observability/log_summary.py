"""Repeated Kafka client errors summarised: while a broker is away, aiokafka logs one ERROR for every
connection attempt of every client (about 9,000 lines a minute for a gateway's producers, consumers
and admin clients), which buries everything else in the log.

`summarise_client_errors()` puts a filter on aiokafka's loggers: the first record of a kind (its logger
and message template) in an interval passes; the rest in that interval are counted, not written; the
first after it passes with how many were held back. Warnings and below pass untouched.
Must not: drop a record of a kind not seen in the interval, or log anything itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: The aiokafka loggers that write an ERROR per failed attempt (connect, metadata, fetch, coordinator,
#: commit, send). A filter on a logger sees only that logger's own records, so each is named.
CLIENT_LOGGERS = (
    "aiokafka",
    "aiokafka.client",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.sender",
)
INTERVAL_S = 60.0


class RepeatSummary(logging.Filter):
    def __init__(self, interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}  # kind -> (interval start, held back)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        kind, at = (record.name, str(record.msg)), self._clock()
        start, held = self._windows.get(kind, (float("-inf"), 0))
        if at - start < self.interval_s:
            self._windows[kind] = (start, held + 1)
            return False
        self._windows[kind] = (at, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {at - start:.0f}s, not written)"
        return True


def summarise_client_errors(interval_s: float = INTERVAL_S) -> RepeatSummary:
    """Install one summary on every aiokafka client logger (again: replaces the one installed before)."""
    summary = RepeatSummary(interval_s)
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RepeatSummary)]:
            logger.removeFilter(old)
        logger.addFilter(summary)
    return summary
