"""The sampler: a background component that asks the broker and the store for their figures every
`monitor.sample_interval_s`, keeps `monitor.history_s` of samples in memory for the dashboard's rates
and charts, and sets the Prometheus gauges.

A broker or store that does not answer makes an unreachable sample, never an error: the dashboard
says so and carries on. Idempotent `start()`/`stop()`, like every component the runtime owns.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.errors import StoreUnavailable
from gateway.monitoring import ledger
from gateway.monitoring.broker_view import BrokerSnapshot, BrokerView
from gateway.monitoring.samples import Sample, Samples
from gateway.observability import metrics
from gateway.settings import MonitorSettings
from gateway.store import Store
from gateway.store.deliveries import DEAD_LETTERED, DELIVERED, RETRYING

log = logging.getLogger(__name__)


class Sampler:
    def __init__(self, view: BrokerView, store: Store, settings: MonitorSettings) -> None:
        self._view = view
        self._store = store
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
            backlog=backlog,
        )
        self.snapshot = snapshot
        self.samples.add(sample)
        _set_gauges(snapshot, backlog)
        await self._ledger_gauges()
        return sample

    async def _run(self) -> None:
        while True:
            try:
                await self.sample_once()
            except Exception:  # the dashboard must outlive any one bad sample
                log.exception("monitor sample failed")
            await asyncio.sleep(self.interval_s)

    async def _backlog(self) -> int | None:
        try:
            return (await ledger.backlog(self._store)).waiting
        except StoreUnavailable:
            return None

    async def _ledger_gauges(self) -> None:
        try:
            stats = await ledger.receiver_stats(self._store)
        except StoreUnavailable:
            return
        for receiver, s in stats.items():
            counts = {DELIVERED: s.delivered, RETRYING: s.retrying, DEAD_LETTERED: s.dead_lettered}
            for status, count in counts.items():
                metrics.DELIVERY_LEDGER.labels(receiver, status).set(count)


def _set_gauges(snapshot: BrokerSnapshot, backlog: int | None) -> None:
    for topic in snapshot.topics:
        metrics.TOPIC_END_OFFSET.labels(topic.name).set(topic.end)
    for group in snapshot.groups:
        metrics.CONSUMER_LAG.labels(group.group, group.topic).set(group.lag)
    if backlog is not None:
        metrics.OUTBOX_BACKLOG.set(backlog)
