"""Reads events back with kafka-python: a Kafka client that shares no code with the gateway."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Event:
    topic: str
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: dict[str, Any]


def read_events(
    servers: str, topic: str, count: int, timeout: float = 10.0, match: Callable[[Event], bool] | None = None
) -> list[Event]:
    """The first `count` events on `topic` (from the start) that `match`, waiting up to `timeout`."""
    consumer = KafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, auto_offset_reset="earliest", consumer_timeout_ms=200
    )
    deadline = time.monotonic() + timeout
    try:
        partitions = _partitions(consumer, topic, deadline)
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return _collect(consumer, count, deadline, match)
    finally:
        consumer.close()


def _partitions(consumer: KafkaConsumer, topic: str, deadline: float) -> list[TopicPartition]:
    """The topic's partitions, waiting for the topic to exist (a restarted broker has none at first)."""
    while True:
        found = consumer.partitions_for_topic(topic)
        if found or time.monotonic() >= deadline:
            return [TopicPartition(topic, p) for p in found or ()]
        time.sleep(0.2)
        consumer.topics()  # refreshes the metadata


def _collect(
    consumer: KafkaConsumer, count: int, deadline: float, match: Callable[[Event], bool] | None
) -> list[Event]:
    found: list[Event] = []
    while len(found) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            for r in records:
                event = Event(
                    r.topic,
                    r.partition,
                    r.offset,
                    (r.key or b"").decode(),
                    {k: v.decode() for k, v in r.headers},
                    json.loads(r.value),
                )
                if match is None or match(event):
                    found.append(event)
    return found
