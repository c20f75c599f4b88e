"""Reads a Kafka record (a referral event, or a retry of one) into a `Delivery`. Pure: no I/O.

Must not: decide what to do with the delivery (the spine does) or reach a receiver.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from aiokafka import ConsumerRecord

from gateway.errors import Issue, MalformedInput

#: Headers a retry record adds to the original event's; they describe the hop, not the event.
RETRY_HEADERS = (
    "retry_id",
    "retry_receiver",
    "retry_attempts",
    "retry_due",
    "retry_original_topic",
    "retry_original_partition",
    "retry_original_offset",
    "retry_last_error",
)


@dataclass(frozen=True)
class Position:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Delivery:
    """One event for one receiver: the original event (key, headers, value) and where it stands."""

    event_id: str
    receiver: str | None  # directory service id; None when the event does not say
    referral_id: str
    event_type: str
    key: str
    headers: dict[str, str]  # the original event's headers, without the retry hop's
    value: str
    origin: Position  # where the event was first published
    read_from: Position  # the record this copy was read from (the origin or a retry record)
    attempts: int  # attempts already made
    retry_id: str | None = None  # set on a copy read from the retry topic
    due: datetime | None = None

    @property
    def correlation_id(self) -> str:
        return self.headers.get("correlation_id", self.event_id)

    def for_receiver(self, receiver: str) -> Delivery:
        return replace(self, receiver=receiver)


def decode(record: ConsumerRecord) -> Delivery:
    """A record from a referral topic or from the retry topic; `MalformedInput` if it is not an event."""
    headers = _headers(record)
    event_id = headers.get("ce_id")
    if not event_id:
        raise MalformedInput("the record has no ce_id header", Issue("ce_id is missing", "headers.ce_id", "required"))
    here = Position(record.topic, record.partition, record.offset)
    retry_id = headers.get("retry_id")
    return Delivery(
        event_id=event_id,
        receiver=headers.get("retry_receiver") or headers.get("routing_service") or None,
        referral_id=_referral_id(headers),
        event_type=headers.get("ce_type", ""),
        key=(record.key or b"").decode(errors="replace"),
        headers={k: v for k, v in headers.items() if k not in RETRY_HEADERS},
        value=(record.value or b"").decode(errors="replace"),
        origin=_origin(headers) if retry_id else here,
        read_from=here,
        attempts=_int(headers, "retry_attempts") if retry_id else 0,
        retry_id=retry_id,
        due=_time(headers, "retry_due") if retry_id else None,
    )


def due_at(record: ConsumerRecord) -> float:
    """When a record may be acted on, in epoch seconds: a retry at its due time, an event at once."""
    for name, raw in record.headers or ():
        if name == "retry_due":
            try:
                return datetime.fromisoformat(raw.decode()).timestamp()
            except ValueError:
                return 0.0
    return 0.0


def _headers(record: ConsumerRecord) -> dict[str, str]:
    return {name: (raw or b"").decode(errors="replace") for name, raw in record.headers or ()}


def _referral_id(headers: dict[str, str]) -> str:
    subject = headers.get("ce_subject", "")
    kind, _, ident = subject.partition("/")
    if kind == "ServiceRequest" and ident:
        return ident
    return headers.get("referral", "").removeprefix("ServiceRequest/") or subject or "unknown"


def _origin(headers: dict[str, str]) -> Position:
    return Position(
        headers.get("retry_original_topic", ""),
        _int(headers, "retry_original_partition"),
        _int(headers, "retry_original_offset"),
    )


def _int(headers: dict[str, str], name: str) -> int:
    try:
        return int(headers.get(name, "0"))
    except ValueError as exc:
        raise MalformedInput(f"the {name} header is not a number", Issue(str(exc), f"headers.{name}")) from exc


def _time(headers: dict[str, str], name: str) -> datetime | None:
    try:
        return datetime.fromisoformat(headers[name]) if name in headers else None
    except ValueError:
        return None


def undecodable(record: ConsumerRecord) -> Delivery:
    """A record that is not an event, as far as it can be read: enough to dead-letter it for a person."""
    here = Position(record.topic, record.partition, record.offset)
    headers = _headers(record)
    return Delivery(
        event_id=headers.get("ce_id") or f"{record.topic}/{record.partition}/{record.offset}",
        receiver=headers.get("retry_receiver") or headers.get("routing_service") or None,
        referral_id=_referral_id(headers),
        event_type=headers.get("ce_type", ""),
        key=(record.key or b"").decode(errors="replace"),
        headers=headers,
        value=(record.value or b"").decode(errors="replace"),
        origin=here,
        read_from=here,
        attempts=0,
    )
