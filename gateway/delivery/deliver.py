"""The delivery spine: what becomes of one record read from a referral topic or from the retry topic.

    decode → ours, and not settled already? → an earlier event still waiting? hold this one behind it
           → choose the outbound adapter (directory) → send → record "delivered"
           → or, when it fails: schedule a retry (back-off), or dead-letter it with the reason

A Task event from referrals.status takes the same path back to the referrer (its `routing_service`
header names the referrer's service; one with none is for the topic's readers only), sent with the
referral it is about, which the RRI^I12 needs.

Each outcome is written with the referral's history and, for a retry or a dead letter, the record to
publish, in one store transaction (shared with the other deliveries under way: ledger.py); the
consumer commits the offset only after `handle` returns. A copy
seen again (redelivery after a crash or a rebalance) finds its delivery settled and does nothing, and
the receiver is sent the same identity every time, so it never gets one referral as two.
Must not: commit offsets (consumer.py) or speak a wire format (adapters/outbound).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from aiokafka import ConsumerRecord

from adapters.outbound.receipt import Outgoing, Receipt
from gateway.bus import events
from gateway.canonical.referral import Reason
from gateway.delivery import envelope
from gateway.delivery.dead_letter import dead_letter_record
from gateway.delivery.envelope import Delivery
from gateway.delivery.ledger import Ledger
from gateway.delivery.outbound import Destination, Destinations, Outbound
from gateway.delivery.retry import RetryAt, RetryPolicy, retry_record
from gateway.errors import DeliveryFailed, GatewayError, MalformedInput
from gateway.settings import DeliverySettings
from gateway.store.deliveries import DEAD_LETTERED, DELIVERED, RETRYING, DeliveryKey, DeliveryRow, Outcome
from gateway.store.store import now

log = logging.getLogger(__name__)

_REASONS: dict[str, Reason] = {
    events.SERVICEREQUEST_CREATED: "new",
    events.SERVICEREQUEST_UPDATED: "update",
    events.SERVICEREQUEST_CANCELLED: "delete",
    events.SERVICEREQUEST_ENTERED_IN_ERROR: "delete",
    events.SERVICEREQUEST_ESCALATED: "new",  # a copy to a fallback service is a new referral there
}


class Deliverer:
    def __init__(
        self,
        ledger: Ledger,
        destinations: Destinations,
        outbound: Outbound,
        settings: DeliverySettings,
        claims: Callable[[str], bool],
        wake_relay: Callable[[], None],
        referral_of: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self._ledger = ledger
        self._referral_of = referral_of  # the stored ServiceRequest (FHIR JSON) a status event is about
        self._destinations = destinations
        self._outbound = outbound
        self._settings = settings
        self._policy = RetryPolicy(settings)
        self._claims = claims
        self._wake_relay = wake_relay

    async def handle(self, record: ConsumerRecord) -> None:
        try:
            delivery = await self._addressed(envelope.decode(record))
        except MalformedInput as error:
            await self._dead_letter_unaddressed(envelope.undecodable(record), error.message)
            return
        if delivery.receiver is None and is_status(delivery):
            log.debug("event %s: a status change for the topic's readers only", delivery.event_id)
            return
        if delivery.receiver is None:
            await self._dead_letter_unaddressed(delivery, "the event names no receiver (routing_service header)")
            return
        if not self._claims(delivery.receiver):
            return  # another delivery group's receiver
        current, earlier = await self._ledger.state(delivery.event_id, delivery.receiver, delivery.referral_id)
        reason = settled(current, delivery)
        if reason:
            log.info("event %s for %s: nothing to do, %s", delivery.event_id, delivery.receiver, reason)
            return
        if earlier is not None:
            await self._hold(delivery, current, earlier)
            return
        await self._attempt(delivery, current)

    async def _addressed(self, delivery: Delivery) -> Delivery:
        """An update or cancellation that names no receiver goes where its referral went."""
        if delivery.receiver is not None or is_status(delivery):
            return delivery
        receiver = await self._ledger.last_receiver(delivery.referral_id)
        return delivery.for_receiver(receiver) if receiver else delivery

    async def _attempt(self, delivery: Delivery, current: DeliveryRow | None) -> None:
        assert delivery.receiver is not None
        destination: Destination | None = None
        try:
            destination = self._destinations.destination(delivery.receiver)
            receipt = await self._outbound.send(destination, await self._outgoing(delivery))
        except GatewayError as error:
            await self._failed(delivery, current, error, destination)
            return
        except Exception as exc:  # an adapter's bug must not stall the partition: back off, then dead-letter
            log.exception("event %s: unexpected error in the outbound adapter", delivery.event_id)
            unexpected = DeliveryFailed(f"unexpected {type(exc).__name__} in the outbound adapter: {exc}")
            await self._failed(delivery, current, unexpected, destination)
            return
        await self._delivered(delivery, current, destination, receipt)

    async def _outgoing(self, delivery: Delivery) -> Outgoing:
        if not is_status(delivery):
            return outgoing(delivery)
        referral = await self._referral_of(delivery.referral_id) if self._referral_of else None
        if referral is None:
            raise DeliveryFailed(f"the referral {delivery.referral_id} of this Task is not known here", retriable=False)
        return replace(outgoing(delivery), referral=referral)

    async def _delivered(
        self, delivery: Delivery, current: DeliveryRow | None, destination: Destination, receipt: Receipt
    ) -> None:
        attempts = delivery.attempts + 1
        step = {
            **_about(delivery),
            "format": destination.format,
            "attempt": attempts,
            "receipt": receipt.summary,
            "duplicate": receipt.duplicate,
        }
        outcome = Outcome(
            DELIVERED, attempts, (("delivered", step),), format=destination.format, receipt=receipt.summary
        )
        if await self._record(delivery, current, outcome):
            log.info(
                "event %s delivered to %s (%s, attempt %d)",
                delivery.event_id,
                delivery.receiver,
                destination.format,
                attempts,
            )

    async def _failed(
        self, delivery: Delivery, current: DeliveryRow | None, error: GatewayError, destination: Destination | None
    ) -> None:
        counted = getattr(error, "counts_as_attempt", True)  # False: held in the receiver's mailbox (MESH)
        attempts = delivery.attempts + (1 if counted else 0)
        fmt = destination.format if destination else None
        failed = (
            "delivery-failed",
            {
                **_about(delivery),
                "format": fmt,
                "attempt": attempts,
                "error": error.message,
                "retriable": error.retriable,
                **({} if counted else {"waiting": True}),
            },
        )
        decision = self._policy.after_failure(error, attempts, now()) if counted else self._policy.waiting(now())
        log.warning(
            "event %s to %s failed (attempt %d): %s", delivery.event_id, delivery.receiver, attempts, error.message
        )
        if isinstance(decision, RetryAt):
            await self._schedule(delivery, current, attempts, decision, error.message, failed)
        else:
            await self._dead_letter(delivery, current, attempts, decision.reason, error.message, failed)

    async def _schedule(
        self,
        delivery: Delivery,
        current: DeliveryRow | None,
        attempts: int,
        decision: RetryAt,
        why: str,
        *before: tuple[str, dict[str, object]],
    ) -> None:
        record = retry_record(
            delivery, topic=self._settings.retry_topic, attempts=attempts, due=decision.due, last_error=why
        )
        step = (
            "retry-scheduled",
            {**_about(delivery), "attempts": attempts, "due": decision.due.isoformat(), "reason": why},
        )
        outcome = Outcome(
            RETRYING,
            attempts,
            (*before, step),
            retry_id=record.event_id,
            next_attempt_at=decision.due,
            last_error=why,
            record=record,
        )
        await self._record(delivery, current, outcome)

    async def _dead_letter(
        self,
        delivery: Delivery,
        current: DeliveryRow | None,
        attempts: int,
        reason: str,
        details: str,
        *before: tuple[str, dict[str, object]],
    ) -> None:
        record = dead_letter_record(
            delivery, topic=self._settings.dead_letter_topic, reason=reason, details=details, attempts=attempts
        )
        step = (
            "dead-lettered",
            {**_about(delivery), "attempts": attempts, "reason": reason, "topic": self._settings.dead_letter_topic},
        )
        outcome = Outcome(DEAD_LETTERED, attempts, (*before, step), last_error=details, record=record)
        if await self._record(delivery, current, outcome):
            log.error("event %s to %s dead-lettered: %s", delivery.event_id, delivery.receiver, reason)

    async def _hold(self, delivery: Delivery, current: DeliveryRow | None, earlier: DeliveryRow) -> None:
        """Keep one referral's events in order: wait until the earlier one is settled."""
        after = max(earlier.next_attempt_at or now(), now())
        due = after + timedelta(seconds=self._policy.delay(1))
        why = f"waiting for event {earlier.event_id} of the same referral to be delivered first"
        await self._schedule(delivery, current, delivery.attempts, RetryAt(due), why)

    async def _dead_letter_unaddressed(self, delivery: Delivery, reason: str) -> None:
        record = dead_letter_record(
            delivery, topic=self._settings.dead_letter_topic, reason=reason, details=reason, attempts=0
        )
        step = ("dead-lettered", {**_about(delivery), "reason": reason, "topic": self._settings.dead_letter_topic})
        if await self._ledger.record_unaddressed(delivery.referral_id, (step,), record):
            log.error(
                "record %s/%s/%s dead-lettered: %s",
                delivery.read_from.topic,
                delivery.read_from.partition,
                delivery.read_from.offset,
                reason,
            )
            self._wake_relay()

    async def _record(self, delivery: Delivery, current: DeliveryRow | None, outcome: Outcome) -> bool:
        written = await self._ledger.record(key(delivery), current, outcome)
        if not written:
            log.info("event %s for %s was settled elsewhere first", delivery.event_id, delivery.receiver)
        elif outcome.record is not None:
            self._wake_relay()
        return written


def settled(current: DeliveryRow | None, delivery: Delivery) -> str | None:
    """Why this copy of an event needs nothing done (None: act on it)."""
    if current is None:
        return None
    if current.status == DELIVERED:
        return "already delivered"
    if delivery.retry_id is not None:
        if current.status == RETRYING and current.retry_id == delivery.retry_id:
            return None
        return "this retry was superseded"
    replayed = (delivery.origin.topic, delivery.origin.partition, delivery.origin.offset) != (
        current.origin_topic,
        current.origin_partition,
        current.origin_offset,
    )
    if current.status == DEAD_LETTERED and replayed:
        return None  # published again after a dead letter: a fresh series of attempts
    return "already being delivered"


def is_status(delivery: Delivery) -> bool:
    """A Task change on its way back to the referrer (or a wait breach, for the topic's readers only),
    not a referral on its way to a receiver."""
    return delivery.event_type in events.STATUS_EVENTS


def outgoing(delivery: Delivery) -> Outgoing:
    return Outgoing(
        resource=delivery.value,
        event_id=delivery.event_id,
        reason=_REASONS.get(delivery.event_type, "update"),
        correlation_id=delivery.correlation_id,
        sent_at=delivery.headers.get("ce_time") or now().isoformat(),
    )


def key(delivery: Delivery) -> DeliveryKey:
    return DeliveryKey(
        event_id=delivery.event_id,
        receiver=delivery.receiver or "",
        referral_id=delivery.referral_id,
        event_type=delivery.event_type,
        origin_topic=delivery.origin.topic,
        origin_partition=delivery.origin.partition,
        origin_offset=delivery.origin.offset,
    )


def _about(delivery: Delivery) -> dict[str, object]:
    return {"receiver": delivery.receiver, "event_id": delivery.event_id, "event_type": delivery.event_type}
