"""Log ends over the real broker after a batch of several records on one partition, which the
embedded broker's ListOffsets reports short: the monitor's figure and the topic browser's newest page
both reach the last record, and a new delivery group starting at "latest" starts past it."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway.bus.end_offsets import end_offsets
from gateway.bus.kafka_config import client_options
from gateway.delivery.consumer import DeliveryConsumer
from gateway.monitoring.browser import Browse, browse
from gateway.settings import KafkaSettings
from tests.delivery.receivers import eventually


async def topic_with_a_batch_of_three(kafka: KafkaSettings) -> str:
    """Three records sent as one batch to partition 0, one to partition 1; partition 2 empty."""
    topic = f"ends-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**client_options(kafka), acks="all", linger_ms=100)
    await producer.start()
    try:
        sent = [await producer.send(topic, f"r{n}".encode(), partition=0) for n in range(3)]
        offsets = [(await f).offset for f in sent]
        assert offsets == [0, 1, 2]
        await producer.send_and_wait(topic, b"r3", partition=1)
    finally:
        await producer.stop()
    return topic


async def test_the_end_of_a_partition_is_past_the_last_record_of_its_last_batch(broker_servers: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=broker_servers)
    topic = await topic_with_a_batch_of_three(kafka)
    consumer = AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        ends = await end_offsets(consumer, tps)
        assert consumer.assignment() == set(), "nothing is left assigned (a long-lived client would keep fetching)"
    finally:
        await consumer.stop()
    assert ends == {tps[0]: 3, tps[1]: 1, tps[2]: 0}


async def test_the_newest_page_of_a_topic_shows_every_record_of_the_last_batch(broker_servers: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=broker_servers)
    topic = await topic_with_a_batch_of_three(kafka)
    page = await browse(kafka, Browse(topic))
    shown = sorted((m.partition, m.offset, m.value) for m in page)
    assert shown == [(0, 0, "r0"), (0, 1, "r1"), (0, 2, "r2"), (1, 0, "r3")]


async def test_a_new_delivery_group_starting_at_latest_takes_nothing_written_before_it(broker_servers: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=broker_servers, session_timeout_ms=2000)
    topic = await topic_with_a_batch_of_three(kafka)
    taken: list[tuple[int, int]] = []

    async def handle(record: ConsumerRecord) -> None:
        taken.append((record.partition, record.offset))

    member = DeliveryConsumer(kafka, f"g-{uuid.uuid4().hex[:8]}", [topic], handle, lambda _: 0.0, 100, 5.0, "latest")
    await member.start()
    try:
        await asyncio.wait_for(member.joined.wait(), 30)
        producer = AIOKafkaProducer(**client_options(kafka), acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"after", partition=0)
        finally:
            await producer.stop()
        await eventually(lambda: (0, 3) in taken, what="the record written after the group started")
    finally:
        await member.stop()
    assert taken == [(0, 3)], "not the rest of the batch before it"
