"""The dead-letter record: the original event (topic, key, headers, value) with why it was given up,
so that it can be replayed once the cause is fixed. Pure: no I/O.

Headers follow the gateway's dead-letter convention (`dlq_reason`, `dlq_details`, `dlq_original_topic`,
`dlq_original_partition`, `dlq_original_offset`, `dlq_attempts`) plus `dlq_receiver`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.bus.events import OutboxEvent
from gateway.delivery.envelope import Delivery
from gateway.delivery.retry import hop_id

DLQ_PREFIX = "dlq_"


def dead_letter_record(delivery: Delivery, *, topic: str, reason: str, details: str, attempts: int) -> OutboxEvent:
    headers = {
        **delivery.headers,
        "dlq_reason": reason[:500],
        "dlq_details": details[:2000],
        "dlq_receiver": delivery.receiver or "",
        "dlq_original_topic": delivery.origin.topic,
        "dlq_original_partition": str(delivery.origin.partition),
        "dlq_original_offset": str(delivery.origin.offset),
        "dlq_attempts": str(attempts),
        "dlq_time": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    return OutboxEvent(
        event_id=hop_id(delivery, "dead-letter"), topic=topic, key=delivery.key, headers=headers, value=delivery.value
    )


def replay(headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The topic and headers to publish a dead-lettered event again with (the value and key are as stored)."""
    original = {k: v for k, v in headers.items() if not k.startswith(DLQ_PREFIX)}
    return headers["dlq_original_topic"], original
