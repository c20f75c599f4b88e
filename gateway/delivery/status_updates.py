"""What becomes of one record read from the status-updates topic: a Task update a receiver published
itself (value: a FHIR Task; its id names the referral's Task).

    parse (FHIR JSON) → the status spine (gateway/status.py: life-cycle rules, new version + event),
    each update recorded in the inbound message log with its outcome (gateway/inbound_log)
    refused because of the record (malformed, an unknown Task, a move the life cycle forbids)
        → dead letter with the reason (dead_letter.py's record, through the outbox), and move on

A `DeliveryConsumer` (consumer.py) runs it, so it has delivery's guarantees: the offset is committed
only after `handle` returns, and a failure that is not the record's fault (the store unavailable, a
concurrent change, a bug) raises, which holds the partition and reads the same record again: no
update is skipped. The dead letter's id comes from the record's position, so a second look writes it
once. Must not: commit offsets (consumer.py) or decide a Task's life cycle (gateway/status.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import cast

from aiokafka import ConsumerRecord
from fhir.resources.R4B.task import Task

from adapters.inbound.fhir.parse import parse
from gateway.delivery import envelope
from gateway.delivery.consumer import DeliveryConsumer
from gateway.delivery.dead_letter import dead_letter_record
from gateway.errors import Issue, MalformedInput, SenderError, StaleWrite
from gateway.inbound_log.arrival import Arrival
from gateway.inbound_log.log import InboundLog
from gateway.settings import Settings
from gateway.status import StatusUpdates
from gateway.store import Store
from gateway.store.deliveries import Deliveries

log = logging.getLogger(__name__)

CHANNEL = "status-topic"
FHIR_JSON = "application/fhir+json"
UNKNOWN_REFERRAL = "status-update"  # the history a refused update is noted in when it names no referral
STOP_GRACE_S = 10.0


def status_updates_consumer(
    settings: Settings,
    status: StatusUpdates,
    store: Store,
    wake_relay: Callable[[], None],
    inbound: InboundLog | None = None,
) -> DeliveryConsumer:
    """The consumer of the status-updates topic. A new group starts at the earliest offset whatever
    DELIVERY_NEW_GROUP_START says: an update a receiver published before the group joined is applied."""
    handler = StatusUpdateHandler(status, Deliveries(store), settings.delivery.dead_letter_topic, wake_relay, inbound)
    return DeliveryConsumer(
        settings.kafka,
        settings.delivery.status_updates_group,
        [settings.topics.status_updates],
        handler.handle,
        envelope.due_at,
        settings.delivery.max_waiting,
        STOP_GRACE_S,
        start_at="earliest",
    )


class StatusUpdateHandler:
    def __init__(
        self,
        status: StatusUpdates,
        ledger: Deliveries,
        dead_letter_topic: str,
        wake_relay: Callable[[], None],
        inbound: InboundLog | None = None,
    ) -> None:
        self._inbound = inbound or InboundLog(None)  # each update recorded with its outcome
        self._status = status
        self._ledger = ledger
        self._dead_letter_topic = dead_letter_topic
        self._wake_relay = wake_relay

    async def handle(self, record: ConsumerRecord) -> None:
        headers = dict(record.headers or ())
        arrival = Arrival(
            CHANNEL,
            record.value or b"",
            sender=headers.get("ce_source", b"status-topic").decode(errors="replace"),
            source_address=f"{record.topic}/{record.partition}/{record.offset}",
            control_id=headers.get("ce_id", b"").decode(errors="replace") or None,
            content_type=FHIR_JSON,
        )
        async with self._inbound.receiving(arrival):  # a store failure is raised on: the record is read again
            try:
                await self._apply(record, arrival.sender)
            except SenderError as error:
                if _raced(error):
                    raise  # the Task changed while this update was made: not the record's fault, read it again
                arrival.refuse(error)
                await self._dead_letter(record, error)

    async def _apply(self, record: ConsumerRecord, sender: str) -> None:
        task = cast(Task, parse(record.value or b"", FHIR_JSON, Task))
        if not task.id:
            raise MalformedInput("a Task update needs the Task's id", Issue("id is missing", "Task.id", "required"))
        await self._status.change(str(task.id), task, channel=CHANNEL, sender=sender)

    async def _dead_letter(self, record: ConsumerRecord, error: SenderError) -> None:
        # cut to the store's columns: a record that cannot be written would hold its partition forever
        delivery = envelope.undecodable(record)
        delivery = replace(delivery, key=delivery.key[:64])
        details = "; ".join(i.diagnostics for i in error.issues) or error.message
        dead = dead_letter_record(
            delivery, topic=self._dead_letter_topic, reason=error.message, details=details, attempts=1
        )
        referral = delivery.headers.get("referral", "").removeprefix("ServiceRequest/")[:64] or UNKNOWN_REFERRAL
        step = ("dead-lettered", {"event_id": dead.event_id, "reason": error.message, "topic": self._dead_letter_topic})
        if await self._ledger.record_unaddressed(referral, (step,), dead):
            log.info("status update at %s/%s refused: %s", record.partition, record.offset, error.message)
            self._wake_relay()


def _raced(error: SenderError) -> bool:
    """A conflict with a concurrent change (a stale write), not a move the life cycle refuses."""
    return isinstance(error, StaleWrite) and not error.unique_key
