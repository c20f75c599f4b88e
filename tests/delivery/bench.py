"""A delivery bench: the real store (SQLite on disk), the real outbox relay and the delivery
component over the real broker, on topics of the test's own, delivering to demo receivers.

Events enter as the intake writes them: an outbox row, published by the relay.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.hl7v2 import tables as hl7_tables
from gateway.bus import events
from gateway.bus.relay import OutboxRelay
from gateway.bus.topics import TopicSpec, ensure_topics
from gateway.delivery.outbound import Destination
from gateway.delivery.service import DeliveryService
from gateway.errors import NotFound
from gateway.settings import SCHEMAS_DIR, DeliverySettings, KafkaSettings, RelaySettings, StoreSettings
from gateway.store import Store
from gateway.store.deliveries import DeliveryRow
from tests.delivery.receivers import eventually
from tests.samples import service_request


@dataclass
class StaticDestinations:
    """The test's own service directory."""

    known: dict[str, Destination] = field(default_factory=dict)

    def destination(self, receiver: str) -> Destination:
        if receiver not in self.known:
            raise NotFound(f"no service '{receiver}' in the directory")
        return self.known[receiver]


@dataclass
class Bench:
    kafka: KafkaSettings
    settings: DeliverySettings
    store: Store
    relay: OutboxRelay
    destinations: StaticDestinations
    services: list[DeliveryService] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return self.settings.topics[0]

    async def add_delivery(self, **changes: Any) -> DeliveryService:
        """Start one more delivery member (same group unless told otherwise)."""
        settings = self.settings.model_copy(update=changes)
        service = DeliveryService(
            self.kafka, settings, self.store, self.destinations, self.relay.wake, hl7=hl7_tables.load(SCHEMAS_DIR)
        )
        await service.start()
        self.services.append(service)
        return service

    async def publish(
        self, receiver: str, kind: str = events.SERVICEREQUEST_CREATED, sr: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Commit one referral event to the outbox, as the intake does; returns (event id, resource)."""
        sr = sr or {
            **service_request(),
            "id": str(uuid.uuid4()),
            "meta": {"versionId": "1", "lastUpdated": "2026-11-23T10:00:00+00:00"},
        }
        event = events.new_event(
            topic=self.topic,
            key=sr["subject"]["identifier"]["value"],
            event_type=kind,
            source="urn:referral-gateway:fhir-rest:A81001",
            subject=f"ServiceRequest/{sr['id']}",
            value=json.dumps(sr),
            correlation_id=str(uuid.uuid4()),
            extra={"routing_service": receiver},
        )
        await self.store.enqueue([event], sr["id"])
        self.relay.wake()
        return event.event_id, sr

    async def rows(self, referral_id: str) -> list[DeliveryRow]:
        return await self.services[0].ledger.for_referral(referral_id)

    async def recorded(self, referrals: list[dict[str, Any]]) -> list[DeliveryRow]:
        """The delivery rows of `referrals` once each has one: a delivery is recorded after the receiver
        answered, so the receiver's count can be ahead of the ledger's for a moment."""
        rows: list[DeliveryRow] = []

        async def each_has_one() -> bool:
            rows[:] = [r for sr in referrals for r in await self.rows(sr["id"])]
            return {r.referral_id for r in rows} >= {sr["id"] for sr in referrals}

        await eventually(each_has_one, timeout=10, what="every delivery recorded")
        return rows

    async def steps(self, referral_id: str) -> list[str]:
        return [h.step for h in await self.store.history(referral_id)]


def delivery_settings(prefix: str, **changes: Any) -> DeliverySettings:
    base: dict[str, Any] = {
        "topics": [f"{prefix}.referrals"],
        "retry_topic": f"{prefix}.retry",
        "dead_letter_topic": f"{prefix}.deadletter",
        "max_attempts": 3,
        "backoff_base_s": 0.2,
        "backoff_max_s": 1.0,
        "http_timeout_s": 2.0,
        "mllp_timeout_s": 2.0,
    }
    return DeliverySettings(**{**base, **changes})


@asynccontextmanager
async def bench(
    servers: str, data_dir: Path, store: StoreSettings | None = None, start: bool = True, **changes: Any
) -> AsyncIterator[Bench]:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    kafka = KafkaSettings(
        bootstrap_servers=servers, enable_idempotence=False, consumer_group_prefix=prefix, session_timeout_ms=2000
    )
    settings = delivery_settings(prefix, **changes)
    await ensure_topics(
        kafka,
        [
            TopicSpec(name=settings.topics[0], partitions=3, purpose="test"),
            TopicSpec(name=settings.retry_topic, partitions=2, purpose="test"),
            TopicSpec(name=settings.dead_letter_topic, partitions=1, purpose="test"),
        ],
    )
    where = store or StoreSettings()
    database = Store(where.url or f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}", schema=where.db_schema)
    await database.start()
    relay = OutboxRelay(database, kafka, RelaySettings(poll_interval_s=0.2))
    await relay.start()
    running = Bench(kafka, settings, database, relay, StaticDestinations())
    try:
        if start:
            await running.add_delivery()
        yield running
    finally:
        for service in reversed(running.services):
            await service.stop()
        await relay.stop()
        await database.stop()
