"""The delivery component the runtime starts: one consumer per delivery group, each reading the
referral topics, referrals.status (Task changes back to referrers) and the retry topic, with the
outbound connections (kept open to each receiver) and the store shared by all.

Idempotent `start()`/`stop()`; disabled by `delivery.enabled = false` (DELIVERY_ENABLED).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from adapters.hl7v2.tables import Hl7Tables
from gateway.delivery import envelope
from gateway.delivery.consumer import DeliveryConsumer
from gateway.delivery.deliver import Deliverer
from gateway.delivery.ledger import Ledger
from gateway.delivery.outbound import Destinations, MeshChannel, Outbound
from gateway.settings import DeliveryGroup, DeliverySettings, KafkaSettings
from gateway.store import Store
from gateway.store.deliveries import Deliveries

log = logging.getLogger(__name__)


class DeliveryService:
    def __init__(
        self,
        kafka: KafkaSettings,
        settings: DeliverySettings,
        store: Store,
        destinations: Destinations,
        wake_relay: Callable[[], None],
        mesh: MeshChannel | None = None,
        *,
        hl7: Hl7Tables,
    ) -> None:
        self.settings = settings
        self.ledger = Deliveries(store)
        batched = Ledger(self.ledger)  # one for every group: the deliveries under way share its batches
        self._outbound = Outbound(settings, hl7, mesh)
        grace = max(settings.http_timeout_s, settings.mllp_timeout_s) + 5.0
        topics = [*settings.topics, settings.retry_topic]
        self.consumers = [
            DeliveryConsumer(
                kafka,
                group.group_id,
                topics,
                Deliverer(
                    batched,
                    destinations,
                    self._outbound,
                    settings,
                    claims(group, settings.groups),
                    wake_relay,
                    referral_of=lambda referral_id: _resource(store, referral_id),
                ).handle,
                envelope.due_at,
                settings.max_waiting,
                grace,
                settings.new_group_start,
                by_key=True,
                max_in_flight=settings.max_in_flight,
            )
            for group in settings.groups
        ]
        self._started = False

    async def start(self) -> None:
        if self._started or not self.settings.enabled:
            return
        self._started = True
        try:
            await self._outbound.start()
            # together: each group's join waits out the broker's rebalance delay
            await asyncio.gather(*(consumer.start() for consumer in self.consumers))
        except BaseException:
            await self.stop()
            raise
        log.info("delivery started: groups %s", ", ".join(c.group_id for c in self.consumers))

    async def joined(self, timeout_s: float = 30.0) -> None:
        """Wait until every group has given this process its partitions (what a test or demo needs
        before publishing, when new groups start at the latest offsets)."""
        await asyncio.wait_for(asyncio.gather(*(c.joined.wait() for c in self.consumers)), timeout_s)

    def rewind(self, topics: Collection[str]) -> None:
        """The broker lost these topics' log: every group reads them again from the start."""
        for consumer in self.consumers:
            consumer.rewind(topics)

    async def stop(self) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))
        await self._outbound.stop()
        self._started = False


async def _resource(store: Store, referral_id: str) -> str | None:
    stored = await store.get(referral_id)
    return stored.resource if stored else None


def claims(group: DeliveryGroup, groups: list[DeliveryGroup]) -> Callable[[str], bool]:
    """Whether a receiver is this group's: one it names, or, for the group naming none, any no group names."""
    if group.receivers:
        return set(group.receivers).__contains__
    named = {r for g in groups for r in g.receivers}
    return lambda receiver: receiver not in named
