"""Batch transactions: a synchronous function over a SQLAlchemy `Connection`, run in one transaction.

On a SQLite file, the function runs whole on a writer thread of its own over the plain driver: the
batch leaves the event loop once. Over the async engine every statement is a hop to aiosqlite's
thread and back, and each hop back waits for the loop to come round; under load, with the loop busy
validating the next messages, a dozen statements made a group commit take 40 ms instead of 2.
On PostgreSQL the function runs on the async engine (asyncpg), as every other query does.

Must not: decide what is written (the caller's function does), or swallow the driver's errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

Result = TypeVar("Result")
Work = Callable[..., Result]


class BatchWriter:
    def __init__(self, engine: AsyncEngine, url: str, on_connect: Callable[[Any, Any], None]) -> None:
        self._engine = engine
        self._sync = _sqlite_file_engine(url, on_connect)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="store-writer") if self._sync else None

    async def run(self, work: Work[Result], *args: Any) -> Result:
        """`work(conn, *args)` in one transaction, committed when it returns."""
        if self._thread is None:
            async with self._engine.begin() as conn:
                return await conn.run_sync(work, *args)
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._transaction, work, args)

    def close(self) -> None:
        """After the last batch (a batch under way is finished and committed first)."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._sync is not None:
            self._sync.dispose()

    def _transaction(self, work: Work[Result], args: tuple[Any, ...]) -> Result:
        assert self._sync is not None
        with self._sync.begin() as conn:
            return work(conn, *args)


def _sqlite_file_engine(url: str, on_connect: Callable[[Any, Any], None]) -> Engine | None:
    """The same SQLite file over the synchronous driver; None for other stores (and for an in-memory
    database, which a second engine would not share)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    engine = create_engine(parsed.set(drivername="sqlite"))
    event.listen(engine, "connect", on_connect)
    return engine
