"""A delivery group whose offsets belong to a log the broker lost: it reads the new log from the start
rather than waiting forever past its end (Tansu answers a fetch there with nothing, not an error)."""

from __future__ import annotations

from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from gateway.delivery.outbound import Destination
from tests.delivery.bench import bench
from tests.delivery.receivers import demo_receiver, eventually

LOST_LOG_END = 100


async def test_a_group_committed_past_the_end_of_the_log_reads_it_from_the_earliest_offset(
    broker_servers: str, tmp_path: Path
) -> None:
    async with demo_receiver() as receiver, bench(broker_servers, tmp_path, start=False) as b:
        b.destinations.known["svc"] = Destination("svc", "fhir-rest", receiver.fhir_base_url)
        sent = [(await b.publish("svc"))[1] for _ in range(6)]
        await commit_past_the_end(broker_servers, f"{b.kafka.consumer_group_prefix}-delivery", b.topic)
        await b.add_delivery()
        hits = receiver.ledger.hits
        await eventually(lambda: len(hits) >= len(sent), timeout=20, what="every referral delivered")
        rows = await b.recorded(sent)
    assert {h.outcome for h in hits} == {"created"} and len(hits) == len(sent), "each once"
    assert [r.status for r in rows] == ["delivered"] * len(sent)


async def commit_past_the_end(servers: str, group: str, topic: str) -> None:
    """The group's offsets as a broker that lost a longer log left them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        assert tps, f"{topic} has no partitions"
        consumer.assign(tps)
        await consumer.commit({tp: LOST_LOG_END for tp in tps})
    finally:
        await consumer.stop()
