"""Group commit: many callers' writes share one transaction, each caller's future resolving only
after the commit. It is what lets a burst of HL7 messages be acknowledged at disk speed without a
transaction (and an fsync) per message.

Must not: resolve a future before the commit, or let one caller's constraint violation fail the
others (a failed batch is replayed one write at a time, so only the offending write fails).

Several processes sharing one PostgreSQL may write the same referral at once: one batch then waits
on the other's unique key and fails when it commits (or PostgreSQL breaks a deadlock between them).
Such a conflict is replayed too, each write on its own, a few times: the replay reads what the other
process committed and answers with it, so a duplicate never surfaces as an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError

log = logging.getLogger(__name__)

#: Deadlock detected, serialization failure: another transaction won; trying again can succeed.
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})
_REPLAYS = 3

Item = TypeVar("Item")
Result = TypeVar("Result")
Transaction = Callable[[Sequence[Item]], Awaitable[list[Result]]]  # one committed transaction per call


class GroupCommitter(Generic[Item, Result]):
    def __init__(self, transaction: Transaction[Item, Result], batch_max: int) -> None:
        self._transaction = transaction
        self._batch_max = batch_max
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Result]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        if self._task is None:
            raise RuntimeError("the store is not started")
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="store-group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("the store stopped before this write committed"))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._transaction([item for item, _ in batch])
        except DBAPIError as exc:
            if not _conflict(exc):
                for _, future in batch:
                    _fail(future, exc)
                return
            log.info("batch of %d hit a constraint (%s); committing one by one", len(batch), type(exc.orig).__name__)
            for entry in batch:
                await self._commit_one(*entry)
            return
        except Exception as exc:  # every waiter must hear of the failure
            for _, future in batch:
                _fail(future, exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _commit_one(self, item: Item, future: asyncio.Future[Result]) -> None:
        for replay in range(1, _REPLAYS + 1):
            try:
                (result,) = await self._transaction([item])
            except DBAPIError as exc:
                if replay < _REPLAYS and _conflict(exc):
                    continue  # another process committed the same key meanwhile: the next read sees it
                _fail(future, exc)
            except Exception as exc:
                _fail(future, exc)
            else:
                if not future.done():
                    future.set_result(result)
            return


def _conflict(exc: DBAPIError) -> bool:
    return isinstance(exc, IntegrityError) or getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES


def _fail(future: asyncio.Future[Result], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
