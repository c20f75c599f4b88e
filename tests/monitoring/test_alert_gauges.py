"""The sampler sets the gauges the alerting rules read (deploy/prometheus/alerts.yml) from what the
store and the broker say: the broker answering, the oldest unpublished outbox event's wait, whether
each receiver's latest delivery failed, and the dead letters nobody has dealt with yet. A real store
on disk and the real broker over TCP (or a port nothing listens on)."""

from __future__ import annotations

from datetime import timedelta

from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY
from sqlalchemy import update

from gateway.delivery import envelope
from gateway.delivery.dead_letter import dead_letter_record
from gateway.monitoring.broker_view import BrokerView
from gateway.monitoring.dead_letters import DeadLetters
from gateway.monitoring.sampler import Sampler
from gateway.settings import KafkaSettings, MonitorSettings
from gateway.store import Store
from gateway.store.deliveries import DELIVERED, RETRYING, Deliveries, DeliveryKey, Outcome
from gateway.store.rows import OutboxEvent, insert_events, now
from gateway.store.tables import outbox
from tests.conftest import free_port

DEAD_LETTER_TOPIC = "referrals.deadletter"


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def sampler(store: Store, servers: str) -> Sampler:
    view = BrokerView(KafkaSettings(bootstrap_servers=servers), ["referrals.msk-pain"], {})
    return Sampler(view, store, MonitorSettings(), DeadLetters(store, DEAD_LETTER_TOPIC))


async def queue(store: Store, event_id: str, topic: str, headers: dict[str, str], waited: timedelta) -> None:
    """An outbox event committed `waited` ago and not yet published."""
    async with store.begin() as conn:
        await insert_events(conn, [OutboxEvent(event_id, topic, "9434765919", headers, "{}")], f"ref-{event_id}")
        await conn.execute(update(outbox).where(outbox.c.event_id == event_id).values(created_at=now() - waited))


async def dead_letter(store: Store, event_id: str, receiver: str) -> str:
    """A dead letter as delivery writes it for an event it gave up on; returns its id."""
    headers = {"ce_id": event_id, "ce_type": "created", "ce_subject": f"ServiceRequest/ref-{event_id}"}
    read = ConsumerRecord(
        "referrals.msk-pain",
        0,
        1,
        0,
        0,
        b"9434765919",
        b"{}",
        None,
        10,
        2,
        tuple((k, v.encode()) for k, v in headers.items()),
    )
    given_up = dead_letter_record(
        envelope.decode(read).for_receiver(receiver),
        topic=DEAD_LETTER_TOPIC,
        reason="failed 8 of 8 attempts",
        details="503",
        attempts=8,
    )
    async with store.begin() as conn:
        await insert_events(conn, [given_up], f"ref-{event_id}")
    return given_up.event_id


async def deliver(store: Store, event_id: str, receiver: str, status: str) -> None:
    ledger = Deliveries(store)
    key = DeliveryKey(event_id, receiver, f"ref-{event_id}", "created", "referrals.msk-pain", 0, 1)
    current = await ledger.get(event_id, receiver)
    outcome = Outcome(status, (current.attempts if current else 0) + 1, (), format="fhir-rest")
    assert await ledger.record(key, current, outcome)


async def test_the_sampler_sets_the_outbox_receiver_and_dead_letter_gauges_from_the_store(
    store: Store, broker_servers: str
) -> None:
    await queue(store, "waiting", "referrals.msk-pain", {"ce_id": "waiting"}, timedelta(minutes=10))
    await deliver(store, "e1", "msk-pain", RETRYING)
    await deliver(store, "e2", "iapt-core", DELIVERED)
    await dead_letter(store, "open", "msk-pain")
    discarded = await dead_letter(store, "discarded", "msk-pain")
    letters = DeadLetters(store, DEAD_LETTER_TOPIC)
    await letters.discard(discarded, "sent again under a new UBRN", by="tester")

    watching = sampler(store, broker_servers)
    await watching.sample_once()

    assert 600 <= (gauge("gateway_outbox_oldest_age_seconds") or 0) < 660
    assert gauge("gateway_receiver_failing", receiver="msk-pain") == 1
    assert gauge("gateway_receiver_failing", receiver="iapt-core") == 0
    assert gauge("gateway_dead_letters_open") == 1
    assert gauge("gateway_broker_up") == 1
    await watching.stop()


async def test_a_receiver_stops_failing_and_dead_letters_close_once_dealt_with(
    store: Store, broker_servers: str
) -> None:
    await deliver(store, "e1", "physio-north", RETRYING)
    letter = await dead_letter(store, "dl-1", "physio-north")
    watching = sampler(store, broker_servers)
    await watching.sample_once()
    assert gauge("gateway_receiver_failing", receiver="physio-north") == 1
    assert gauge("gateway_dead_letters_open") == 1

    await deliver(store, "e1", "physio-north", DELIVERED)
    await DeadLetters(store, DEAD_LETTER_TOPIC).discard(letter, "delivered by hand", by="tester")
    async with store.begin() as conn:  # the relay published everything: nothing waits
        await conn.execute(update(outbox).values(published_at=now()))
    await watching.sample_once()
    assert gauge("gateway_receiver_failing", receiver="physio-north") == 0
    assert gauge("gateway_dead_letters_open") == 0
    assert gauge("gateway_outbox_oldest_age_seconds") == 0
    await watching.stop()


async def test_the_broker_gauge_says_when_the_broker_does_not_answer(store: Store, broker_servers: str) -> None:
    silent = sampler(store, f"127.0.0.1:{free_port()}")
    sample = await silent.sample_once()
    assert not sample.reachable and gauge("gateway_broker_up") == 0
    await silent.stop()

    answering = sampler(store, broker_servers)
    await answering.sample_once()
    assert gauge("gateway_broker_up") == 1
    await answering.stop()
