"""The deliveries ledger as the spine uses it with many records in hand: the look-ups and the outcomes
of the deliveries under way at one moment are gathered, and each batch is one read (two queries) or
one write transaction (gateway/store/deliveries.py: `look_up`, `record_many`).

A call waits for its batch: while one batch is being read or written, the calls that come meanwhile
form the next, so a lone delivery is not delayed and a busy moment costs one transaction, not one
per delivery. An outcome's call returns only after its batch has committed, as before: the consumer
commits the offset after that.
Must not: decide what becomes of a delivery (deliver.py) or commit offsets (consumer.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from gateway.store.deliveries import Deliveries, DeliveryKey, DeliveryRow, Outcome
from gateway.store.store import OutboxEvent

Item = TypeVar("Item")
Result = TypeVar("Result")
BATCH_MAX = 256


class Gathered(Generic[Item, Result]):
    """Calls made while a batch is under way, run together as the next batch."""

    def __init__(self, run: Callable[[Sequence[Item]], Awaitable[list[Result]]], batch_max: int = BATCH_MAX) -> None:
        self._run = run
        self._batch_max = batch_max
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._batch_max], self._waiting[self._batch_max :]
            try:
                results = await self._run([item for item, _ in batch])
            except BaseException as exc:  # each caller sees the batch's error, as it would its own
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class Ledger:
    def __init__(self, deliveries: Deliveries, batch_max: int = BATCH_MAX) -> None:
        self._deliveries = deliveries
        self._look_up = Gathered(deliveries.look_up, batch_max)
        self._record = Gathered(deliveries.record_many, batch_max)

    async def state(
        self, event_id: str, receiver: str, referral_id: str
    ) -> tuple[DeliveryRow | None, DeliveryRow | None]:
        """The delivery of this event to this receiver, and an earlier event of the referral for that
        receiver still waiting for a retry."""
        return await self._look_up((event_id, receiver, referral_id))

    async def record(self, key: DeliveryKey, current: DeliveryRow | None, outcome: Outcome) -> bool:
        """Write the outcome (with its batch); False when another consumer already moved this delivery."""
        return await self._record((key, current, outcome))

    async def last_receiver(self, referral_id: str) -> str | None:
        return await self._deliveries.last_receiver(referral_id)

    async def record_unaddressed(
        self, referral_id: str, steps: tuple[tuple[str, dict[str, Any]], ...], record: OutboxEvent
    ) -> bool:
        return await self._deliveries.record_unaddressed(referral_id, steps, record)
