"""When the embedded broker has been started again, the relay is told (`broker_back`) and acts at once:
it ends its back-off, checks the new, empty log in that round, reports what was lost, and publishes
what waited. With a 20 s back-off and a 60 s poll, nothing of that would happen within seconds."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

import pytest

from gateway.bus.events import new_event
from gateway.bus.relay import OutboxRelay
from gateway.bus.topics import ensure_topics, load_topics
from gateway.settings import SCHEMAS_DIR, KafkaSettings, RelaySettings
from gateway.store.store import Store
from tests.conftest import free_port, start_tansu
from tests.delivery.receivers import eventually

TOPIC = "referrals.physiotherapy"


async def test_a_relay_told_the_broker_is_back_finds_the_lost_log_and_publishes_at_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    broker = await asyncio.to_thread(start_tansu, port)
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", enable_idempotence=False)
    topics = [t for t in load_topics(SCHEMAS_DIR) if t.name == TOPIC]
    lost: list[tuple[set[str], datetime]] = []

    async def restore_topics() -> None:
        await ensure_topics(kafka, topics)

    async def log_lost(names: set[str], since: datetime) -> None:
        lost.append((names, since))

    await restore_topics()
    settings = RelaySettings(retry_backoff_s=20, retry_backoff_max_s=20, poll_interval_s=60, ack_timeout_s=2)
    relay = OutboxRelay(store, kafka, settings, on_broker_error=restore_topics, on_log_lost=log_lost)
    run = uuid.uuid4().hex

    async def commit(n: int) -> None:
        event = new_event(
            topic=TOPIC,
            key="9434765919",
            event_type="t",
            source="s",
            subject=f"{run}/{n}",
            value="{}",
            correlation_id=run,
        )
        await store.enqueue([event], f"{run}-{n}")
        relay.wake()

    await relay.start()
    try:
        for n in range(3):
            await commit(n)
        await eventually(lambda: relay.published == 3, 20, "the first events published")
        broker.kill()
        await asyncio.to_thread(broker.wait, 10)
        with caplog.at_level(logging.WARNING, logger="gateway.bus.relay"):
            await commit(3)
            await eventually(lambda: "publishing failed" in caplog.text, 30, "the relay failing and backing off")
        broker = await asyncio.to_thread(start_tansu, port)  # empty: no log, no topics
        await restore_topics()
        relay.broker_back()
        await eventually(lambda: relay.published == 4, 8, "the waiting event published at once")
        assert [names for names, _ in lost] == [{TOPIC}], "the lost log reported in that round"
    finally:
        await relay.stop()
        broker.kill()
        broker.wait(10)
