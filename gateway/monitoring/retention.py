"""The pruning job: a component that, every `retention.interval_s`, deletes what the store no longer
needs to keep (settings section `retention`):

- published outbox events older than `outbox_days`; a dead letter only once it was replayed or
  discarded (an open dead letter is kept however old: it is work still to do);
- the history and delivery records of referrals whose last step is older than `history_days`
  (a delivery still waiting for a retry is never deleted), and the MESH channel's record of the
  messages it sent that long ago;
- inbound messages (the inbound log) received more than `inbound_days` ago.

Referrals and their Tasks are the record and are never deleted here. Unpublished events are never
deleted. Idempotent `start()`/`stop()`; `prune(now)` is what the job runs, and what tests call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.errors import StoreUnavailable
from gateway.monitoring.dead_letters import DISCARDED, REPLAYED
from gateway.settings import RetentionSettings
from gateway.store import Store, retention
from gateway.store.store import now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pruned:
    outbox: int = 0
    history: int = 0
    deliveries: int = 0
    inbound: int = 0
    mesh_sent: int = 0


class Pruner:
    def __init__(self, store: Store, settings: RetentionSettings, dead_letter_topic: str) -> None:
        self._store = store
        self._settings = settings
        self._dead_letters = dead_letter_topic
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None and self._settings.enabled:
            self._task = asyncio.create_task(self._run(), name="retention-pruner")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def prune(self, at: datetime | None = None) -> Pruned:
        at = at or now()
        cutoffs = retention.Cutoffs(
            events=at - timedelta(days=self._settings.outbox_days),
            histories=at - timedelta(days=self._settings.history_days),
            dead_letter_topic=self._dead_letters,
            settled_steps=(REPLAYED, DISCARDED),
        )
        deleted = await retention.prune(self._store, cutoffs)
        inbound = await self._store.inbound.prune(at - timedelta(days=self._settings.inbound_days))
        return Pruned(deleted.outbox, deleted.history, deleted.deliveries, inbound, deleted.mesh_sent)

    async def _run(self) -> None:
        while True:
            try:
                pruned = await self.prune()
                log.info(
                    "retention: pruned %d events, %d history steps, %d deliveries, %d inbound messages, "
                    "%d MESH messages sent",
                    pruned.outbox,
                    pruned.history,
                    pruned.deliveries,
                    pruned.inbound,
                    pruned.mesh_sent,
                )
            except StoreUnavailable as exc:
                log.warning("retention: the store did not answer (%s); trying again later", exc.message)
            await asyncio.sleep(self._settings.interval_s)
