"""What the broker says about the gateway's topics and consumer groups: partitions, beginning and end
offsets, and each group's committed offsets and lag.

Uses aiokafka's admin client (`list_topics`, `describe_topics`, `list_consumer_groups`,
`list_consumer_group_offsets`) and a consumer without a group (`beginning_offsets`, and the log ends
of gateway/bus/end_offsets.py, which the embedded broker answers short with ListOffsets alone).
Where the broker cannot answer, the snapshot says so in `notes` and shows what it could learn:

- The embedded broker (Tansu) answers OffsetFetch only when the partitions are named (asking for
  "all of the group's offsets" breaks the connection), so committed offsets are always asked for the
  gateway's topics by name; that works on Apache Kafka too.
- Tansu creates a topic on first mention, so only topics the broker lists are ever asked about.
- A broker that cannot list groups still gets the gateway's own groups (from the settings) asked about.

Must not: commit offsets, join a group or create a topic.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from gateway.bus.end_offsets import end_offsets
from gateway.bus.kafka_config import client_options
from gateway.settings import KafkaSettings, Settings

log = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PartitionOffsets:
    partition: int
    beginning: int
    end: int


@dataclass(frozen=True)
class TopicOffsets:
    name: str
    partitions: tuple[PartitionOffsets, ...]

    @property
    def end(self) -> int:
        """Records ever written (the sum of the partitions' end offsets)."""
        return sum(p.end for p in self.partitions)

    @property
    def retained(self) -> int:
        return sum(p.end - p.beginning for p in self.partitions)


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the group has committed nothing here yet
    end: int
    lag: int


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    partitions: tuple[PartitionLag, ...]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


@dataclass(frozen=True)
class BrokerSnapshot:
    at: datetime
    reachable: bool
    topics: tuple[TopicOffsets, ...] = ()
    groups: tuple[GroupLag, ...] = ()
    notes: tuple[str, ...] = field(default=())  # what the broker could not tell, and why

    def topic(self, name: str) -> TopicOffsets | None:
        return next((t for t in self.topics if t.name == name), None)


def gateway_groups(settings: Settings) -> dict[str, list[str]]:
    """The consumer groups the gateway runs and the topics each reads (full group ids)."""
    prefix = settings.kafka.consumer_group_prefix
    delivery = settings.delivery
    groups = {f"{prefix}-{g.group_id}": [*delivery.topics, delivery.retry_topic] for g in delivery.groups}
    groups[f"{prefix}-{delivery.status_updates_group}"] = [settings.topics.status_updates]
    return groups


class BrokerView:
    """Long-lived admin and consumer clients, opened on first use and again after a failure."""

    def __init__(self, kafka: KafkaSettings, topics: list[str], groups: dict[str, list[str]]) -> None:
        self._kafka = kafka
        self._topics = topics
        self._groups = groups
        self._prefix = f"{kafka.consumer_group_prefix}-"
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def snapshot(self) -> BrokerSnapshot:
        at = datetime.now(UTC)
        try:
            async with asyncio.timeout(SNAPSHOT_TIMEOUT_S):
                admin, consumer = await self._clients()
                topics = await _topic_offsets(admin, consumer, self._topics)
                groups, notes = await self._lags(admin, topics)
        except (KafkaError, OSError, TimeoutError) as exc:
            await self.close()
            why = str(exc) or type(exc).__name__
            return BrokerSnapshot(at, False, notes=(f"the broker at {self._kafka.servers} did not answer: {why}",))
        return BrokerSnapshot(at, True, topics, groups, notes)

    async def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            await self.close()
            options = client_options(self._kafka)
            self._admin = AIOKafkaAdminClient(**options)
            self._consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
            await self._admin.start()
            await self._consumer.start()
        return self._admin, self._consumer

    async def _lags(
        self, admin: AIOKafkaAdminClient, topics: tuple[TopicOffsets, ...]
    ) -> tuple[tuple[GroupLag, ...], tuple[str, ...]]:
        names, notes = await self._group_names(admin)
        lags: list[GroupLag] = []
        for group in names:
            try:
                committed = await admin.list_consumer_group_offsets(group, partitions=_partitions(topics))
            except KafkaError as exc:
                notes.append(f"committed offsets of {group}: the broker did not answer ({exc})")
                continue
            offsets = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
            lags.extend(group_lags(group, topics, offsets, self._groups.get(group, [])))
        return tuple(lags), tuple(notes)

    async def _group_names(self, admin: AIOKafkaAdminClient) -> tuple[list[str], list[str]]:
        try:
            listed = [str(g[0]) for g in await admin.list_consumer_groups()]
        except KafkaError as exc:
            note = f"the broker does not list consumer groups ({exc}); showing the gateway's own groups only"
            return sorted(self._groups), [note]
        ours = {g for g in listed if g.startswith(self._prefix)} | set(self._groups)
        return sorted(ours), []


async def _topic_offsets(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, wanted: list[str]
) -> tuple[TopicOffsets, ...]:
    existing = set(await admin.list_topics())
    names = [name for name in wanted if name in existing]
    if not names:
        return ()
    described = await admin.describe_topics(names)
    partitions = {d["topic"]: sorted(p["partition"] for p in d["partitions"]) for d in described if not d["error_code"]}
    tps = [TopicPartition(name, p) for name in names for p in partitions.get(name, [])]
    beginning = await consumer.beginning_offsets(tps)
    end = await end_offsets(consumer, tps)
    return tuple(
        TopicOffsets(
            name,
            tuple(
                PartitionOffsets(p, beginning[TopicPartition(name, p)], end[TopicPartition(name, p)])
                for p in partitions.get(name, [])
            ),
        )
        for name in names
    )


def _partitions(topics: tuple[TopicOffsets, ...]) -> list[TopicPartition]:
    return [TopicPartition(t.name, p.partition) for t in topics for p in t.partitions]


def group_lags(
    group: str, topics: tuple[TopicOffsets, ...], committed: dict[TopicPartition, int], reads: list[str]
) -> list[GroupLag]:
    """A group's lag on each topic it reads: one it is known to read, or one it has committed on.
    A partition without a commit lags by everything retained (the gateway's groups start at the earliest)."""
    read = set(reads) | {tp.topic for tp in committed}
    lags = []
    for topic in topics:
        if topic.name not in read:
            continue
        partitions = tuple(_partition_lag(topic.name, p, committed) for p in topic.partitions)
        lags.append(GroupLag(group, topic.name, partitions))
    return lags


def _partition_lag(topic: str, p: PartitionOffsets, committed: dict[TopicPartition, int]) -> PartitionLag:
    at = committed.get(TopicPartition(topic, p.partition))
    lag = p.end - (at if at is not None else p.beginning)
    return PartitionLag(p.partition, at, p.end, max(lag, 0))
