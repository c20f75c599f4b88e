"""Applies the Task updates receivers publish themselves on `referrals.status-updates`.

A record's value is a FHIR Task (its id names the referral's Task). A valid change goes through the
status spine like any other; one the gateway refuses is dead-lettered with the reason (through the
outbox, so the refusal itself is never lost) and the offset moves on. If the store cannot commit, the
offset is not committed and the record is read again: nothing published is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError
from fhir.resources.R4B.task import Task

from adapters.inbound.fhir.parse import parse
from gateway.bus import events
from gateway.bus.kafka_config import consumer_options
from gateway.errors import Issue, MalformedInput, SenderError
from gateway.inbound_log.arrival import Arrival
from gateway.inbound_log.log import InboundLog
from gateway.settings import KafkaSettings
from gateway.status import StatusUpdates
from gateway.store import Store

log = logging.getLogger(__name__)

TOPIC = "referrals.status-updates"
DEAD_LETTER_TOPIC = "referrals.deadletter"
GROUP = "status-updates"


class StatusTopicListener:
    def __init__(
        self,
        kafka: KafkaSettings,
        status: StatusUpdates,
        store: Store,
        wake_relay: Callable[[], None],
        inbound: InboundLog | None = None,
    ) -> None:
        self._inbound = inbound or InboundLog(None)
        self._kafka = kafka
        self._status = status
        self._store = store
        self._wake = wake_relay
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        self._consumer = AIOKafkaConsumer(TOPIC, **consumer_options(self._kafka, GROUP))
        self._task = asyncio.create_task(self._run(), name="status-topic-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        await self._consumer.start()  # joins the group in the background: start-up does not wait
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        await self._apply(record)
                if batch:
                    await self._consumer.commit()
            except (KafkaError, OSError) as exc:
                log.warning("status updates: %s; trying again", exc)
                await asyncio.sleep(1)

    async def _apply(self, record: ConsumerRecord) -> None:
        headers = dict(record.headers)
        sender = headers.get("ce_source", b"status-topic").decode(errors="replace")
        arrival = Arrival(
            "status-topic",
            record.value or b"",
            sender=sender,
            source_address=f"{record.topic}/{record.partition}/{record.offset}",
            control_id=headers.get("ce_id", b"").decode(errors="replace") or None,
            content_type="application/fhir+json",
        )
        async with self._inbound.receiving(arrival):  # a store failure is raised on: the record is read again
            try:
                task = cast(Task, parse(record.value or b"", "application/fhir+json", Task))
                if not task.id:
                    raise MalformedInput(
                        "a Task update needs the Task's id", Issue("id is missing", "Task.id", "required")
                    )
                await self._status.change(str(task.id), task, channel="status-topic", sender=sender)
            except SenderError as exc:
                arrival.refuse(exc)
                await self._dead_letter(record, exc)

    async def _dead_letter(self, record: ConsumerRecord, error: SenderError) -> None:
        log.info("status update at %s/%s refused: %s", record.partition, record.offset, error.message)
        headers = {k: v.decode(errors="replace") for k, v in record.headers}
        event = events.new_event(
            topic=DEAD_LETTER_TOPIC,
            key=(record.key or b"").decode(errors="replace"),
            event_type=events.TASK_UPDATED,
            source="urn:referral-gateway:status-topic:listener",
            subject=headers.get("ce_subject", "Task/unknown"),
            value=(record.value or b"").decode(errors="replace"),
            correlation_id=headers.get("correlation_id", "none"),
            extra={
                "dlq_reason": error.message,
                "dlq_details": "; ".join(i.diagnostics for i in error.issues),
                "dlq_original_topic": record.topic,
                "dlq_original_partition": str(record.partition),
                "dlq_original_offset": str(record.offset),
                "dlq_attempts": "1",
            },
        )
        await self._store.enqueue([event], referral_id="status-update")
        self._wake()
