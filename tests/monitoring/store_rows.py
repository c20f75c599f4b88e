"""Rows the delivery spine and the relay leave in the store, written through the store's own calls:
an outbox event that has waited, a dead letter as delivery writes it, a delivery's outcome."""

from __future__ import annotations

from datetime import timedelta

from aiokafka import ConsumerRecord
from sqlalchemy import Connection, update

from gateway.delivery import envelope
from gateway.delivery.dead_letter import dead_letter_record
from gateway.store import Store
from gateway.store.deliveries import Deliveries, DeliveryKey, Outcome
from gateway.store.rows import OutboxEvent, now, write_events
from gateway.store.tables import outbox

DEAD_LETTER_TOPIC = "referrals.deadletter"


async def queue(store: Store, event_id: str, topic: str, headers: dict[str, str], waited: timedelta) -> None:
    """An outbox event committed `waited` ago and not yet published."""

    def write(conn: Connection) -> None:
        write_events(conn, [OutboxEvent(event_id, topic, "9434765919", headers, "{}")], f"ref-{event_id}")
        conn.execute(update(outbox).where(outbox.c.event_id == event_id).values(created_at=now() - waited))

    await store.write(write)


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
    await store.write(write_events, [given_up], f"ref-{event_id}")
    return given_up.event_id


async def deliver(store: Store, event_id: str, receiver: str, status: str) -> None:
    ledger = Deliveries(store)
    key = DeliveryKey(event_id, receiver, f"ref-{event_id}", "created", "referrals.msk-pain", 0, 1)
    current = await ledger.get(event_id, receiver)
    outcome = Outcome(status, (current.attempts if current else 0) + 1, (), format="fhir-rest")
    assert await ledger.record(key, current, outcome)
