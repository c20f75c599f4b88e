"""Task updates receivers publish on the status-updates topic, read by a delivery consumer: while the
store is unreachable (PostgreSQL behind a proxy the test cuts) each update is tried again, nothing is
committed past it, and once the store is back every update is applied, once, and none dead-lettered.
One the gateway refuses is dead-lettered in delivery's shape, for replay to the status-updates topic."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import select
from sqlalchemy.engine import make_url

from gateway.delivery.dead_letter import replay
from gateway.settings import Settings, StoreSettings
from gateway.store.tables import outbox
from tests.api.test_task_status import publish, referral_and_task
from tests.conftest import POSTGRES_URL, RunningGateway, drop_schema, free_port, postgres_answers, serve, shutdown
from tests.delivery.receivers import eventually
from tests.kafka_reader import read_events
from tests.proxy import CuttableProxy

UPDATES = 4


@pytest.fixture
async def proxied_store() -> AsyncIterator[tuple[StoreSettings, CuttableProxy]]:
    """The store on PostgreSQL, reached through a proxy the test can cut."""
    if not postgres_answers():
        pytest.skip(f"no PostgreSQL server answers at {make_url(POSTGRES_URL).render_as_string()}")
    url = make_url(POSTGRES_URL)
    proxy = CuttableProxy(free_port(), (url.host or "127.0.0.1", url.port or 5432))
    await proxy.start()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield StoreSettings(url=url.set(port=proxy.port).render_as_string(hide_password=False), db_schema=schema), proxy
    await proxy.cut()
    await drop_schema(schema)


@pytest.mark.postgres
@pytest.mark.parametrize(  # the store is replaced by the proxied one
    "store_settings", [pytest.param("sqlite", id="postgresql-behind-a-proxy")], indirect=True
)
async def test_status_updates_wait_out_an_unreachable_store_and_are_each_applied_once(
    gateway_settings: Settings,
    proxied_store: tuple[StoreSettings, CuttableProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store_settings, proxy = proxied_store
    gateway = await serve(gateway_settings.model_copy(update={"store": store_settings}))
    runtime, topic = gateway.runtime, gateway_settings.topics.status_updates
    try:
        async with gateway.client() as client:
            made = [await referral_and_task(client) for _ in range(UPDATES)]
        await asyncio.wait_for(runtime.status_updates.joined.wait(), 30)
        await proxy.cut()
        with caplog.at_level(logging.ERROR, logger="gateway.delivery.consumer"):
            at = [
                await asyncio.to_thread(publish_at, gateway_settings.kafka.servers, topic, sr, task)
                for sr, task in made
            ]
            await eventually(lambda: _failures(caplog) >= 2, 30, "the handler failing against the missing store")
        await asyncio.sleep(2)  # past the consumer's commit interval
        group = f"{gateway_settings.kafka.consumer_group_prefix}-{gateway_settings.delivery.status_updates_group}"
        committed = await asyncio.to_thread(committed_offsets, gateway_settings.kafka.servers, group, topic, at)
        assert all(committed[p] is None or committed[p] <= o for p, o in at), (
            "committed past an update",
            at,
            committed,
        )
        await proxy.start()

        async def applied() -> list[tuple[str, int]]:
            tasks = [await runtime.status.tasks.get(task["id"]) for _, task in made]
            return [(t.status, t.version) for t in tasks if t]

        async def all_applied() -> bool:
            return await applied() == [("accepted", 2)] * UPDATES

        await eventually(all_applied, 60, "every update applied once the store is back")
        await asyncio.sleep(2)  # room for a second, wrong, application or a dead letter to show
        assert await applied() == [("accepted", 2)] * UPDATES, "each update applied once"
        async with runtime.store.door.read() as conn:
            query = select(outbox.c.value).where(outbox.c.topic == gateway_settings.delivery.dead_letter_topic)
            dead = (await conn.execute(query)).all()
        ours = [row for row in dead if any(task["id"] in row.value for _, task in made)]
        assert not ours, "no update was dead-lettered for the store's outage"
    finally:
        if not proxy.listening:
            await proxy.start()
        await shutdown(gateway)


def publish_at(servers: str, topic: str, sr: dict[str, Any], task: dict[str, Any]) -> tuple[int, int]:
    """A receiver's Task update (accepted) on the topic; where it landed (partition, offset)."""
    producer = KafkaProducer(bootstrap_servers=servers, acks="all")
    value = json.dumps({**task, "status": "accepted"}).encode()
    key = sr["subject"]["identifier"]["value"].encode()
    sent = producer.send(topic, value, key=key, headers=[("ce_source", b"urn:receiver:NQ1IA")]).get(timeout=10)
    producer.close()
    return int(sent.partition), int(sent.offset)


def committed_offsets(servers: str, group: str, topic: str, at: list[tuple[int, int]]) -> dict[int, int | None]:
    """The group's committed offset of each partition in `at`, read without joining the group."""
    reader = KafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False)
    try:
        return {p: reader.committed(TopicPartition(topic, p)) for p, _ in at}
    finally:
        reader.close()


def _failures(caplog: pytest.LogCaptureFixture) -> int:
    return sum("status-updates" in r.getMessage() and "trying again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_a_refused_update_is_dead_lettered_in_deliverys_shape_and_replays_to_its_topic(
    running_gateway: RunningGateway,
) -> None:
    settings = running_gateway.settings
    async with running_gateway.client() as client:
        sr, task = await referral_and_task(client)
    nhs, subject = sr["subject"]["identifier"]["value"], f"Task/{task['id']}"
    headers = {"ce_source": "urn:receiver:NQ1IA", "ce_subject": subject}
    no_id = {k: v for k, v in task.items() if k != "id"}
    for value in ({**task, "status": "teleported"}, no_id):
        await asyncio.to_thread(publish, settings.kafka.servers, settings.topics.status_updates, nhs, value, headers)
    letters = await asyncio.to_thread(
        read_events,
        settings.kafka.servers,
        settings.delivery.dead_letter_topic,
        2,
        20,
        lambda e: e.headers.get("ce_subject") == subject,
    )
    reasons = sorted(e.headers["dlq_reason"] for e in letters)
    assert any("teleported" in r for r in reasons) and any("id" in r for r in reasons), reasons
    for letter in letters:
        assert DLQ_HEADERS <= set(letter.headers), "the shared dead-letter record's headers"
        assert replay(letter.headers) == (settings.topics.status_updates, headers)
    assert (await running_gateway.runtime.status.tasks.get(task["id"])).status == "requested"  # type: ignore[union-attr]


DLQ_HEADERS = {
    "dlq_reason",
    "dlq_details",
    "dlq_receiver",
    "dlq_original_topic",
    "dlq_original_partition",
    "dlq_original_offset",
    "dlq_attempts",
    "dlq_time",
}
