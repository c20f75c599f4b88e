"""The sampler: a background component that asks the broker and the store for their figures every
`monitor.sample_interval_s`, keeps `monitor.history_s` of samples in memory for the dashboard's rates
and charts, and sets the Prometheus gauges (those the alerting rules in deploy/prometheus read: the
broker answering, consumer lag, the outbox backlog and its age, receivers failing, open dead letters).

A broker or store that does not answer makes an unreachable sample, never an error: the dashboard
says so and carries on. Idempotent `start()`/`stop()`, like every component the runtime owns.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.errors import StoreUnavailable
from gateway.monitoring import ledger
from gateway.monitoring.broker_view import BrokerSnapshot, BrokerView
from gateway.monitoring.dead_letters import DeadLetters
from gateway.monitoring.samples import Sample, Samples
from gateway.observability import metrics
from gateway.settings import MonitorSettings
from gateway.store import Store
from gateway.store.deliveries import DEAD_LETTERED, DELIVERED, RETRYING
from gateway.store.rows import now

log = logging.getLogger(__name__)


class Sampler:
    def __init__(
        self, view: BrokerView, store: Store, settings: MonitorSettings, dead_letters: DeadLetters | None = None
    ) -> None:
        self._view = view
        self._store = store
        self._dead_letters = dead_letters
        self.interval_s = settings.sample_interval_s
        self.samples = Samples(int(settings.history_s / settings.sample_interval_s) + 1)
        self.snapshot: BrokerSnapshot | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="monitor-sampler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._view.close()

    async def sample_once(self) -> Sample:
        snapshot = await self._view.snapshot()
        backlog = await self._backlog()
        sample = Sample(
            at=snapshot.at,
            reachable=snapshot.reachable,
            topic_ends={t.name: t.end for t in snapshot.topics},
            group_lags={f"{g.group} {g.topic}": g.lag for g in snapshot.groups},
            backlog=backlog.waiting if backlog else None,
        )
        self.snapshot = snapshot
        self.samples.add(sample)
        _set_gauges(snapshot, backlog)
        await self._ledger_gauges()
        await self._dead_letter_gauge()
        return sample

    async def _run(self) -> None:
        while True:
            try:
                await self.sample_once()
            except Exception:  # the dashboard must outlive any one bad sample
                log.exception("monitor sample failed")
            await asyncio.sleep(self.interval_s)

    async def _backlog(self) -> ledger.Backlog | None:
        try:
            return await ledger.backlog(self._store)
        except StoreUnavailable:
            return None

    async def _ledger_gauges(self) -> None:
        try:
            stats = await ledger.receiver_stats(self._store)
        except StoreUnavailable:
            return
        ledger_counts: dict[tuple[str, ...], float] = {}
        failing: dict[tuple[str, ...], float] = {}
        for receiver, s in stats.items():
            counts = {DELIVERED: s.delivered, RETRYING: s.retrying, DEAD_LETTERED: s.dead_lettered}
            ledger_counts.update({(receiver, status): count for status, count in counts.items()})
            failing[(receiver,)] = 1 if s.latest_status in (RETRYING, DEAD_LETTERED) else 0
        metrics.set_exactly(metrics.DELIVERY_LEDGER, ledger_counts)
        metrics.set_exactly(metrics.RECEIVER_FAILING, failing)

    async def _dead_letter_gauge(self) -> None:
        if self._dead_letters is None:
            return
        try:
            metrics.DEAD_LETTERS_OPEN.set(await self._dead_letters.open_count())
        except StoreUnavailable:
            return


def _set_gauges(snapshot: BrokerSnapshot, backlog: ledger.Backlog | None) -> None:
    metrics.BROKER_UP.set(1 if snapshot.reachable else 0)
    for topic in snapshot.topics:
        metrics.TOPIC_END_OFFSET.labels(topic.name).set(topic.end)
    for group in snapshot.groups:
        metrics.CONSUMER_LAG.labels(group.group, group.topic).set(group.lag)
    if backlog is not None:
        metrics.OUTBOX_BACKLOG.set(backlog.waiting)
        waited = (now() - backlog.oldest).total_seconds() if backlog.oldest else 0.0
        metrics.OUTBOX_OLDEST_AGE.set(max(waited, 0.0))
