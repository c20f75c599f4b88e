"""The pruning job: a component that, every `retention.interval_s`, deletes what the store no longer
needs to keep (settings section `retention`):

- published outbox events older than `outbox_days`; a dead letter only once it was replayed or
  discarded (an open dead letter is kept however old: it is work still to do);
- the history and delivery records of referrals whose last step is older than `history_days`
  (a delivery still waiting for a retry is never deleted);
- inbound messages (the inbound log) received more than `inbound_days` ago.

Referrals and their Tasks are the record and are never deleted here. Unpublished events are never
deleted. Idempotent `start()`/`stop()`; `prune(now)` is what the job runs, and what tests call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import StoreUnavailable
from gateway.monitoring.dead_letters import DISCARDED, REPLAYED
from gateway.settings import RetentionSettings
from gateway.store import Store
from gateway.store.deliveries import RETRYING
from gateway.store.store import now
from gateway.store.tables import deliveries, history, outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pruned:
    outbox: int = 0
    history: int = 0
    deliveries: int = 0
    inbound: int = 0


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
        async with self._store.begin() as conn:
            events = await self._prune_events(conn, at - timedelta(days=self._settings.outbox_days))
            steps, kept = await self._prune_histories(conn, at - timedelta(days=self._settings.history_days))
        inbound = await self._store.inbound.prune(at - timedelta(days=self._settings.inbound_days))
        return Pruned(events, steps, kept, inbound)

    async def _prune_events(self, conn: AsyncConnection, before: datetime) -> int:
        settled = await self._settled_dead_letters(conn, before)
        result = await conn.execute(
            delete(outbox).where(
                outbox.c.published_at < before,
                (outbox.c.topic != self._dead_letters) | outbox.c.event_id.in_(settled),
            )
        )
        return int(result.rowcount or 0)

    async def _prune_histories(self, conn: AsyncConnection, before: datetime) -> tuple[int, int]:
        """Deliveries first: which referrals are stale is read from the history deleted after."""
        stale = (
            select(history.c.referral_id).group_by(history.c.referral_id).having(func.max(history.c.at) < before)
        ).scalar_subquery()
        kept = await conn.execute(
            delete(deliveries).where(deliveries.c.referral_id.in_(stale), deliveries.c.status != RETRYING)
        )
        steps = await conn.execute(delete(history).where(history.c.referral_id.in_(stale)))
        return int(steps.rowcount or 0), int(kept.rowcount or 0)

    async def _settled_dead_letters(self, conn: AsyncConnection, before: datetime) -> list[str]:
        """Dead letters published before `before` that were replayed or discarded."""
        candidates = select(outbox.c.referral_id).where(
            outbox.c.topic == self._dead_letters, outbox.c.published_at < before
        )
        query = select(history.c.detail).where(
            history.c.step.in_((REPLAYED, DISCARDED)), history.c.referral_id.in_(candidates)
        )
        return [json.loads(r.detail).get("dead_letter", "") for r in (await conn.execute(query)).all()]

    async def _run(self) -> None:
        while True:
            try:
                pruned = await self.prune()
                log.info(
                    "retention: pruned %d events, %d history steps, %d deliveries, %d inbound messages",
                    pruned.outbox,
                    pruned.history,
                    pruned.deliveries,
                    pruned.inbound,
                )
            except StoreUnavailable as exc:
                log.warning("retention: the store did not answer (%s); trying again later", exc.message)
            await asyncio.sleep(self._settings.interval_s)
