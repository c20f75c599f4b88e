"""The message browser: a page of a topic's records, from an offset or from a time, or the newest.

A consumer without a group is assigned the topic's partitions (or one of them), seeks, and reads up
to the end offsets it saw when it began, so a page is finite even while referrals flow. Values are
FHIR JSON and are masked (`masking.mask`) unless the caller may and does ask otherwise; the key (an
NHS number) and header values are masked the same way.

Must not: join a consumer group, commit offsets, or mention a topic the broker lacks (the embedded
broker would create it).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from gateway.bus.end_offsets import end_offsets
from gateway.bus.kafka_config import client_options
from gateway.errors import BrokerUnavailable, Issue, MalformedInput, NotFound
from gateway.observability.masking import mask, mask_key, scrub_text
from gateway.settings import KafkaSettings

READ_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: str
    headers: dict[str, str]
    value: Any  # parsed JSON, or the text when it is not JSON


@dataclass(frozen=True)
class Browse:
    """What to read: one partition or all, from an offset or a time; neither: the newest records."""

    topic: str
    partition: int | None = None
    offset: int | None = None
    since: datetime | None = None
    limit: int = 50

    @property
    def newest(self) -> bool:
        return self.offset is None and self.since is None


async def browse(kafka: KafkaSettings, ask: Browse, unmasked: bool = False) -> list[Message]:
    """Up to `ask.limit` records, oldest first."""
    if ask.offset is not None and ask.since is not None:
        raise MalformedInput("give an offset or a time, not both", Issue("both offset and since", "offset", "value"))
    await must_exist(kafka, ask.topic)
    consumer = AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False)
    try:
        await consumer.start()
        tps = _partitions(consumer, ask)
        ends = await end_offsets(consumer, tps)
        consumer.assign(tps)
        starts = await _seek(consumer, tps, ask, ends)
        records = await _read(consumer, starts, ends, ask.limit)
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {kafka.servers} did not answer: {exc}") from exc
    finally:
        await consumer.stop()
    page = records[-ask.limit :] if ask.newest else records[: ask.limit]
    return [message(r, unmasked) for r in page]


def message(record: ConsumerRecord, unmasked: bool) -> Message:
    raw = (record.value or b"").decode(errors="replace")
    value: Any = _json(raw)
    key = (record.key or b"").decode(errors="replace")
    headers = {k: (v or b"").decode(errors="replace") for k, v in record.headers or ()}
    if not unmasked:
        value = mask(value)
        key = mask_key(key)
        headers = {k: scrub_text(v) for k, v in headers.items()}
    at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    return Message(record.topic, record.partition, record.offset, at, key, headers, value)


async def must_exist(kafka: KafkaSettings, topic: str) -> None:
    admin = AIOKafkaAdminClient(**client_options(kafka))
    try:
        await admin.start()
        known = set(await admin.list_topics())
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {kafka.servers} did not answer: {exc}") from exc
    finally:
        await admin.close()
    if topic not in known:
        raise NotFound(f"the broker has no topic '{topic}'")


def _partitions(consumer: AIOKafkaConsumer, ask: Browse) -> list[TopicPartition]:
    known = sorted(consumer.partitions_for_topic(ask.topic) or ())
    if ask.partition is None:
        return [TopicPartition(ask.topic, p) for p in known]
    if known and ask.partition not in known:
        raise NotFound(f"{ask.topic} has no partition {ask.partition} (it has {len(known)})")
    return [TopicPartition(ask.topic, ask.partition)]


async def _seek(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], ask: Browse, ends: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Seek each partition; returns where each starts."""
    starts = await _starts(consumer, tps, ask, ends)
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    return starts


async def _starts(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], ask: Browse, ends: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    if ask.since is not None:
        found = await consumer.offsets_for_times({tp: int(ask.since.timestamp() * 1000) for tp in tps})
        return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in tps}
    beginnings = await consumer.beginning_offsets(tps)
    wanted = {tp: ask.offset if ask.offset is not None else ends[tp] - ask.limit for tp in tps}
    return {tp: min(max(wanted[tp], beginnings[tp]), ends[tp]) for tp in tps}


async def _read(
    consumer: AIOKafkaConsumer, starts: dict[TopicPartition, int], ends: dict[TopicPartition, int], limit: int
) -> list[ConsumerRecord]:
    """Records up to the end offsets seen at the start, at most `limit` per partition, oldest first."""
    taken: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in ends}
    following = dict(starts)  # the next offset each partition should give
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READ_TIMEOUT_S
    while loop.time() < deadline and any(following[tp] < end and len(taken[tp]) < limit for tp, end in ends.items()):
        batch = await consumer.getmany(timeout_ms=200)
        for tp, records in batch.items():
            taken[tp].extend(r for r in records if r.offset < ends[tp])
            following[tp] = max([following[tp], *(r.offset + 1 for r in records)])
    records = [r for rs in taken.values() for r in rs[:limit]]
    return sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset))


def _json(raw: str) -> Any:
    if raw[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw
