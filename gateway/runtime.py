"""Everything long-lived the gateway owns, started in order and stopped in reverse.

Each component has idempotent `start()`/`stop()`. If start-up fails half way, what was started is
stopped again before the error propagates: no broker process or socket is left behind. The embedded
broker watches its own process and starts it again when it exits (bus/broker.py); it then calls
`broker_back`, which restores the topics and sets the relay to find what the lost log held at once.
What the relay finds lost (`log_lost`) is published again, read again from its start, and every
consumer group joins again with a new client.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Protocol

from adapters.hl7v2 import tables as hl7_tables
from gateway.audit.trail import AuditTrail
from gateway.auth.authority import Authority
from gateway.auth.senders import SenderCheck, SenderPolicy
from gateway.bus.broker import BrokerHealth, EmbeddedBroker
from gateway.bus.relay import OutboxRelay
from gateway.bus.topics import ensure_topics, load_topics
from gateway.delivery.destinations import DirectoryDestinations
from gateway.delivery.overdue import OverdueRetries
from gateway.delivery.service import DeliveryService
from gateway.delivery.status_updates import status_updates_consumer
from gateway.inbound_log.log import InboundLog
from gateway.inbound_log.resubmit import Resubmitter
from gateway.intake import Intake
from gateway.mesh.channel import Mesh
from gateway.mllp.handler import ReferralHandler
from gateway.mllp.listener import MllpListener
from gateway.monitoring.broker_view import BrokerView, gateway_groups
from gateway.monitoring.dead_letters import DeadLetters
from gateway.monitoring.retention import Pruner
from gateway.monitoring.sampler import Sampler
from gateway.observability.log_summary import summarise_client_errors
from gateway.routing import load_router
from gateway.safety.calendar import load_calendar
from gateway.safety.configuration import ConfigurationRecord, loaded
from gateway.safety.limits import load_wait_limits
from gateway.safety.watcher import WaitWatcher
from gateway.settings import Settings
from gateway.status import StatusUpdates
from gateway.store import Store
from gateway.store.outbox import Outbox

log = logging.getLogger(__name__)


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class Together:
    """Components with no order among them, started together and stopped together. If one fails to
    start, all are stopped (each stop is idempotent) before the error goes on."""

    def __init__(self, *parts: Component) -> None:
        self._parts = parts

    async def start(self) -> None:
        results = await asyncio.gather(*(p.start() for p in self._parts), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise failed[0]

    async def stop(self) -> None:
        results = await asyncio.gather(*(p.stop() for p in self._parts), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        kafka = settings.kafka
        broker_log = settings.data_dir / "broker.log"
        self.broker = (
            EmbeddedBroker(kafka.embedded_host, kafka.embedded_port, broker_log, on_restarted=self.broker_back)
            if kafka.embedded
            else None
        )
        summarise_client_errors()  # aiokafka's one ERROR per connection attempt while a broker is away
        self.topics = load_topics(settings.schemas_dir)
        self.router = load_router(settings.schemas_dir)
        self.store = Store(settings.store_url, settings.store.batch_max, settings.store.db_schema)
        self.inbound_log = InboundLog(self.store.inbound, settings.inbound.enabled)
        self.relay = OutboxRelay(
            self.store, kafka, settings.relay, on_broker_error=self.ensure_topics, on_log_lost=self.log_lost
        )
        self.audit = AuditTrail(self.store, self.relay.wake, settings.store.batch_max, topic=settings.topics.audit)
        self.auth = Authority(settings, self.store)
        self.status = StatusUpdates(
            self.store,
            settings.schemas_dir,
            self.relay.wake,
            audit=self.audit,
            referrer_service=self.router.directory.referrer_service,
            topic=settings.topics.status,
        )
        self.intake = Intake(
            self.store,
            self.router,
            self.relay.wake,
            on_cancelled=self.status.referral_cancelled,
            audit=self.audit,
            validate_mapped=settings.intake.validate_mapped,
        )
        self.status_updates = status_updates_consumer(
            settings, self.status, self.store, self.relay.wake, self.inbound_log
        )
        hl7 = hl7_tables.load(settings.schemas_dir)
        self.mesh = (
            Mesh(
                settings.mesh,
                self.intake,
                self.status,
                self.store,
                hl7,
                self.router.directory,
                settings.mllp.sender_organisations,
                self.inbound_log,
            )
            if settings.mesh.enabled
            else None
        )
        destinations = DirectoryDestinations(self.router.directory)
        self.delivery = DeliveryService(
            kafka,
            settings.delivery,
            self.store,
            destinations,
            self.relay.wake,
            self.mesh.outbox if self.mesh else None,
            hl7=hl7,
        )
        senders = SenderCheck(SenderPolicy(settings.mllp.senders), self.audit)
        self.hl7_handler = ReferralHandler(
            self.intake, hl7, senders, self.status, settings.mllp.sender_organisations, self.inbound_log
        )
        self.mllp = MllpListener(settings.mllp, self.hl7_handler, hl7)
        self.resubmitter = Resubmitter(
            self.inbound_log,
            self.store.inbound,
            self.intake,
            self.hl7_handler,
            (settings.pad, settings.schemas_dir),
            self.audit,
            settings.inbound.bulk_max,
        )
        self.dead_letters = DeadLetters(
            self.store, settings.delivery.dead_letter_topic, self.relay.wake, self.router.directory.__contains__
        )
        view = BrokerView(kafka, [t.name for t in self.topics], gateway_groups(settings))
        self.sampler = Sampler(view, self.store, settings.monitor, self.dead_letters)
        self.pruner = Pruner(self.store, settings.retention, settings.delivery.dead_letter_topic)
        limits = load_wait_limits(settings.schemas_dir, self.router.directory)
        calendar = load_calendar(settings.schemas_dir)
        self.overdue = OverdueRetries(self.store, settings.delivery, self.relay.wake)
        self.watcher = WaitWatcher(
            self.store, limits, calendar, self.relay.wake, settings.watcher, settings.topics.status
        )
        self.configuration = ConfigurationRecord(
            self.audit, settings.schemas_dir, loaded(settings.schemas_dir, self.router, limits, calendar)
        )
        self._started: list[Component] = []
        self._renewal: asyncio.Task[None] | None = None  # the consumers joining again after a lost log
        self._renew_again = False

    def components(self) -> list[Component]:
        """In start order. Later capabilities (listeners, consumers) append themselves here."""
        first: list[Component] = [self.broker] if self.broker else []
        listeners: list[Component] = [self.mllp] if self.settings.mllp.enabled else []
        listeners += [self.mesh] if self.mesh else []
        # the delivery groups and the status-updates group join together: each join waits out the
        # broker's rebalance delay, so one after another they would add up
        consumers = [self.delivery, self.status_updates] if self.settings.delivery.enabled else [self.status_updates]
        watchers: list[Component] = [self.sampler, self.pruner, self.watcher]
        watchers += [self.overdue] if self.settings.delivery.enabled else []
        return [
            *first,
            _Topics(self),
            self.store,
            self.audit,
            self.configuration,
            self.auth,
            self.relay,
            Together(*consumers),
            *listeners,
            *watchers,
        ]

    async def start(self) -> None:
        try:
            for component in self.components():
                await component.start()
                self._started.append(component)
        except BaseException:
            await self.stop()
            raise
        log.info("gateway started: Kafka %s, store %s", self.settings.kafka.servers, self.store.url.split("://")[0])

    async def stop(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            await asyncio.gather(self._renewal, return_exceptions=True)
        while self._started:
            component = self._started.pop()
            try:
                await component.stop()
            except (Exception, asyncio.CancelledError):
                # aiokafka's stop can re-raise its own fetch task's cancellation; the rest must still stop
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                log.exception("stopping %s failed", type(component).__name__)

    async def ensure_topics(self) -> None:
        created = await ensure_topics(self.settings.kafka, self.topics)
        if created:
            log.info("topics created: %d", len(created))

    @property
    def broker_health(self) -> BrokerHealth | None:
        """The embedded broker's supervision (None: a cluster the gateway does not run)."""
        return self.broker.health if self.broker else None

    async def broker_back(self) -> None:
        """The embedded broker was started again, empty: its topics first, then the relay at once
        (its log check finds what was lost, and `log_lost` has it published again)."""
        try:
            await self.ensure_topics()
        finally:
            self.relay.broker_back()

    async def log_lost(self, topics: set[str], since: datetime) -> None:
        """The relay found that the broker lost what it held of `topics` before `since` (restarted empty,
        a topic deleted and made again, or truncated): publish again what each unconfirmed delivery
        waits for, read the topics again from their start (positions there belong to the lost log), and
        have the consumer groups join again with new clients (the topics may have other partitions now)."""
        delivery = self.settings.delivery
        outbox = Outbox(self.store)
        count = await outbox.republish_lost(topics, since, delivered=delivery.topics, retries=delivery.retry_topic)
        if count:
            log.warning("%d unconfirmed events to publish again", count)
            self.relay.wake()
        self.delivery.rewind(topics)
        self.status_updates.rewind(topics)
        self._renew_consumers()

    def _renew_consumers(self) -> None:
        """Every consumer group joins again with a new client, in the background: the relay, which
        reported the loss, goes on publishing meanwhile. In order: every client stopped, the topics
        restored, then the new clients, so none of them asks for a topic before it is back (a broker
        that makes a missing topic on request would make it with its own partition count, which a
        client then keeps). A loss reported while that is under way has it done once more, after."""
        if self._renewal is not None and not self._renewal.done():
            self._renew_again = True
            return
        self._renewal = asyncio.create_task(self._renew(), name="consumers-renewal")

    async def _renew(self) -> None:
        while True:
            self._renew_again = False
            consumers = [*self.delivery.consumers, self.status_updates]
            running = await asyncio.gather(*(consumer.leave() for consumer in consumers))
            try:
                await self.ensure_topics()
            except Exception as exc:  # the broker away again: the new clients keep trying to join
                log.warning("topics not restored before the consumer groups join again: %s", exc)
            await asyncio.gather(*(c.rejoin() for c, was in zip(consumers, running, strict=True) if was))
            if not self._renew_again:
                return


class _Topics:
    """Start-up step: the broker has every topic before anything publishes."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def start(self) -> None:
        await self._runtime.ensure_topics()

    async def stop(self) -> None:
        return None
