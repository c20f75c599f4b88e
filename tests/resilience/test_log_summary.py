"""aiokafka's one ERROR per connection attempt, summarised: one line per kind and interval, with how
many were held back; other kinds and lesser levels pass untouched. No I/O: a list handler and a clock."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from gateway.observability.log_summary import CLIENT_LOGGERS, RepeatSummary, summarise_client_errors


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def client_log() -> Iterator[tuple[logging.Logger, Lines, Clock]]:
    logger, lines, clock = logging.getLogger("aiokafka.client"), Lines(), Clock()
    installed = list(logger.filters)  # a runtime started in this process put its own summary there
    logger.filters = [RepeatSummary(60.0, clock)]
    logger.addHandler(lines)
    yield logger, lines, clock
    logger.removeHandler(lines)
    logger.filters = installed


def test_a_storm_of_connection_errors_is_one_line_per_interval_with_a_count(
    client_log: tuple[logging.Logger, Lines, Clock],
) -> None:
    logger, lines, clock = client_log
    for attempt in range(3 * 9000):  # 9,000 a minute for three minutes
        clock.now += 60 / 9000
        logger.error('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, f"refused {attempt}")
    clock.now += 60
    logger.error('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, "refused again")  # reports the last minute's
    assert len(lines.lines) == 4
    assert lines.lines[0] == 'Unable connect to "127.0.0.1:9092": refused 0'
    held = [re.search(r"\(and (\d+) more like it in the last \d+s, not written\)$", line) for line in lines.lines[1:]]
    assert all(held) and len(lines.lines) + sum(int(m.group(1)) for m in held if m) == 3 * 9000 + 1, "each counted"


def test_another_kind_of_error_and_warnings_are_not_held_back(client_log: tuple[logging.Logger, Lines, Clock]) -> None:
    logger, lines, _ = client_log
    logger.error("Unable connect to node with id %s: %s", 1, "refused")
    logger.error("Unable connect to node with id %s: %s", 1, "refused")
    logger.error("Unable to update metadata from %s", [1])
    logger.warning("Topic %s is not available during auto-create initialization", "t")
    logger.warning("Topic %s is not available during auto-create initialization", "t")
    assert lines.lines == [
        "Unable connect to node with id 1: refused",
        "Unable to update metadata from [1]",
        "Topic t is not available during auto-create initialization",
        "Topic t is not available during auto-create initialization",
    ]


def test_installing_the_summary_again_replaces_it_on_every_client_logger() -> None:
    installed = {name: list(logging.getLogger(name).filters) for name in CLIENT_LOGGERS}
    try:
        first, second = summarise_client_errors(), summarise_client_errors()
        for name in CLIENT_LOGGERS:
            summaries = [f for f in logging.getLogger(name).filters if isinstance(f, RepeatSummary)]
            assert summaries == [second] and first not in summaries
    finally:
        for name, filters in installed.items():
            logging.getLogger(name).filters = filters
