"""Overdue retries: the store's last word on a retry the broker lost.

A delivery that failed waits in the ledger (status retrying, `next_attempt_at`) for its retry event on
the retry topic. When the broker loses its log the relay sees it by the log ends and publishes again
what each delivery waits for (store/outbox.py `republish_lost`). A broker restarted empty can grow its
log back past the old end before the relay looks, and records acknowledged meanwhile can go with it.
The ledger still knows what is owed: every `delivery.overdue_retry_s / 5` seconds, retries more than
`delivery.overdue_retry_s` past due are published again. A copy that was only late is answered by the
ledger ("already delivered"), so the worst case is a second look, never a second delivery.

Must not: decide whether or when a delivery is tried (the retry policy and the ledger do).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from gateway.errors import StoreUnavailable
from gateway.settings import DeliverySettings
from gateway.store import Store
from gateway.store.outbox import Outbox
from gateway.store.store import now

log = logging.getLogger(__name__)


class OverdueRetries:
    def __init__(self, store: Store, settings: DeliverySettings, wake_relay: Callable[[], None]) -> None:
        self._outbox = Outbox(store)
        self._settings = settings
        self._wake_relay = wake_relay
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="overdue-retries")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def sweep(self, at: datetime | None = None) -> int:
        """Publish again the retries overdue at `at` (now); how many."""
        before = (at or now()) - timedelta(seconds=self._settings.overdue_retry_s)
        count = await self._outbox.republish_overdue(self._settings.retry_topic, before)
        if count:
            log.warning("%d retries overdue by more than %gs: published again", count, self._settings.overdue_retry_s)
            self._wake_relay()
        return count

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.overdue_retry_s / 5)
            try:
                await self.sweep()
            except StoreUnavailable as exc:
                log.warning("overdue retries not checked: %s", exc)
