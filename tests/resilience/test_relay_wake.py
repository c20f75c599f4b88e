"""The relay publishes each commit when it is woken, not at its next poll: a commit made while a round
is under way is carried by the next round at once, though after a round that found fewer rows than a
batch the relay waits for a wake rather than claiming again. Against the real broker, on both stores."""

from __future__ import annotations

import asyncio
import uuid

from gateway.bus.events import new_event
from gateway.bus.relay import OutboxRelay
from gateway.bus.topics import ensure_topics, load_topics
from gateway.settings import SCHEMAS_DIR, KafkaSettings, RelaySettings
from gateway.store.store import Store
from tests.delivery.receivers import eventually
from tests.kafka_reader import read_events

TOPIC = "referrals.iapt"


async def test_every_commit_is_published_long_before_the_poll(each_store: Store, broker_servers: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=broker_servers, enable_idempotence=False)
    await ensure_topics(kafka, [t for t in load_topics(SCHEMAS_DIR) if t.name == TOPIC])
    relay = OutboxRelay(each_store, kafka, RelaySettings(poll_interval_s=120, batch_size=5))
    await relay.start()
    run, committed = uuid.uuid4().hex, 0

    async def commit() -> None:
        nonlocal committed
        event = new_event(
            topic=TOPIC,
            key="9434765919",
            event_type="t",
            source="s",
            subject=f"{run}/{committed}",
            value="{}",
            correlation_id=run,
        )
        await each_store.enqueue([event], f"{run}-{committed}")
        relay.wake()
        committed += 1

    try:
        for turns in range(30):  # a second commit ever later into the round the first one woke
            await commit()
            for _ in range(turns):
                await asyncio.sleep(0)
            await commit()
            await eventually(lambda: relay.published == committed, 5, f"commit {committed} published before the poll")
    finally:
        await relay.stop()
    events = read_events(broker_servers, TOPIC, committed, 20, lambda e: e.headers["ce_subject"].startswith(run))
    assert sorted(e.headers["ce_subject"] for e in events) == sorted(f"{run}/{n}" for n in range(committed))
