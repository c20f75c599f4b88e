"""When to try a failed delivery again, and the record that waits on `referrals.retry`. Pure: no I/O.

Back-off is exponential with jitter (base·2ⁿ⁻¹, capped; a configured share of each delay is random so
that receivers coming back are not hit by every waiting delivery at once). A failure the receiver
says will not change (4xx, HL7 AR) is not retried; neither is one that used up every attempt.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.bus.events import OutboxEvent
from gateway.delivery.envelope import Delivery, Position
from gateway.errors import GatewayError
from gateway.settings import DeliverySettings

_HOP_NAMESPACE = uuid.UUID("b1f0e6a4-3c55-4d0e-9a57-7c2d1e9f4a10")
_MAX_DOUBLINGS = 30  # beyond this the cap applies anyway; keeps 2ⁿ a small number


@dataclass(frozen=True)
class RetryAt:
    due: datetime


@dataclass(frozen=True)
class GiveUp:
    reason: str


class RetryPolicy:
    def __init__(self, settings: DeliverySettings, rng: random.Random | None = None) -> None:
        self.max_attempts = settings.max_attempts
        self._base = settings.backoff_base_s
        self._max = settings.backoff_max_s
        self._jitter = settings.backoff_jitter
        self._rng = rng or random.Random()

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failure."""
        ceiling = min(self._max, self._base * 2.0 ** min(max(attempts - 1, 0), _MAX_DOUBLINGS))
        return ceiling * (1 - self._jitter) + self._rng.uniform(0, ceiling * self._jitter)

    def after_failure(self, error: GatewayError, attempts: int, now: datetime) -> RetryAt | GiveUp:
        if not error.retriable:
            return GiveUp(f"the receiver refused it: {error.message}")
        if attempts >= self.max_attempts:
            return GiveUp(f"failed {attempts} of {self.max_attempts} attempts; the last: {error.message}")
        return RetryAt(now + timedelta(seconds=self.delay(attempts)))

    def waiting(self, now: datetime) -> RetryAt:
        """A delivery the receiver's mailbox holds and has not taken yet (MESH): looked at again
        after the longest back-off, as it may take the receiver a while; no attempt is used up."""
        return RetryAt(now + timedelta(seconds=self.delay(self.max_attempts)))


def hop_id(delivery: Delivery, purpose: str) -> str:
    """Deterministic per record read: acting on the same record twice writes the same hop once."""
    at = delivery.read_from
    name = f"{purpose}|{delivery.event_id}|{delivery.receiver}|{at.topic}|{at.partition}|{at.offset}"
    return str(uuid.uuid5(_HOP_NAMESPACE, name))


def retry_record(delivery: Delivery, *, topic: str, attempts: int, due: datetime, last_error: str) -> OutboxEvent:
    """The event again, with the hop's headers: who it is for, how often it failed, when it is due."""
    retry_id = hop_id(delivery, "retry")
    headers = {
        **delivery.headers,
        "retry_id": retry_id,
        "retry_receiver": delivery.receiver or "",
        "retry_attempts": str(attempts),
        "retry_due": due.isoformat(timespec="milliseconds"),
        **_origin("retry_original", delivery.origin),
        "retry_last_error": last_error[:500],
    }
    return OutboxEvent(event_id=retry_id, topic=topic, key=delivery.key, headers=headers, value=delivery.value)


def _origin(prefix: str, origin: Position) -> dict[str, str]:
    return {
        f"{prefix}_topic": origin.topic,
        f"{prefix}_partition": str(origin.partition),
        f"{prefix}_offset": str(origin.offset),
    }
