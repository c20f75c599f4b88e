"""The one door into the database: reads on the async engine, every write on the store's writer.

`write(work, *args)` runs `work(conn, *args)`, a synchronous function over a SQLAlchemy `Connection`,
in one transaction on the writer (store/writer.py): on a SQLite file that is a thread of its own over
the plain driver, so one connection writes the file and no two writers wait on each other's lock;
on PostgreSQL it is the async engine. `read()` lends a connection for queries, inside gateway/store
only: the repositories (referrals, tasks, outbox, deliveries, ...) ask through here and hand their
callers domain objects, never a connection.

Library errors leave as `StoreUnavailable`; a constraint violation stays itself for the repository
to answer (a resend, a conflict), and group commits see the driver's errors as they are (they replay a
batch that hit a constraint).
Must not: decide what is written, or know any table (the repositories do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Executable, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gateway.errors import StoreUnavailable
from gateway.store.migrate import upgrade_to_head
from gateway.store.writer import BatchWriter

Result = TypeVar("Result")
Item = TypeVar("Item")

#: How long a reader (or another process, such as the CLI adding a partner while the gateway runs)
#: waits for SQLite's lock. In one gateway process only the writer thread writes, so no write waits on
#: another of ours; what remains are WAL checkpoints and a second process's short writes.
SQLITE_BUSY_TIMEOUT_MS = 5000


class Door:
    def __init__(self, url: str, schema: str | None = None) -> None:
        self.url = url
        self.schema = schema
        self.shared = make_url(url).get_backend_name() != "sqlite"
        self._engine: AsyncEngine | None = None
        self._writer: BatchWriter | None = None

    @property
    def started(self) -> bool:
        return self._engine is not None

    async def open(self) -> None:
        engine = _create_engine(self.url, self.schema)
        try:
            await upgrade_to_head(engine, self.schema)
        except DBAPIError as exc:
            await engine.dispose()
            raise StoreUnavailable(
                f"the store at {make_url(self.url).render_as_string()} cannot be opened: {exc.orig}"
            ) from exc
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._writer = BatchWriter(engine, self.url, _sqlite_pragmas)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        """The async engine itself, for the store's own modules and tests (migrations, held locks)."""
        return self._started_engine()

    async def write(self, work: Callable[..., Result], *args: Any) -> Result:
        """`work(conn, *args)` in one transaction on the writer; library errors as `StoreUnavailable`,
        a constraint violation as itself."""
        with _committing():
            return await self._started_writer().run(work, *args)

    def batch(self, work: Callable[[Connection, Sequence[Item]], list[Result]]) -> Callable[..., Any]:
        """A group committer's transaction: `work` over a batch on the writer, the driver's errors
        left as they are (the committer replays a batch that hit a constraint)."""

        async def transaction(items: Sequence[Item]) -> list[Result]:
            return await self._started_writer().run(work, items)

        return transaction

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for queries (gateway/store only); library errors as `StoreUnavailable`."""
        try:
            async with self._started_engine().connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise StoreUnavailable(f"the store cannot be read: {exc.orig}") from exc

    @asynccontextmanager
    async def locking(self) -> AsyncIterator[AsyncConnection]:
        """A PostgreSQL transaction that holds row locks across awaits (the relay's claim, FOR UPDATE
        SKIP LOCKED, until its marks). Never on SQLite, whose writes all go through `write`."""
        if not self.shared:
            raise RuntimeError("SQLite writes go through the writer")
        with _committing():
            async with self._started_engine().begin() as conn:
                yield conn

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    def _started_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreUnavailable("the store is not started")
        return self._engine

    def _started_writer(self) -> BatchWriter:
        if self._writer is None:
            raise StoreUnavailable("the store is not started")
        return self._writer


@contextmanager
def _committing() -> Iterator[None]:
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as exc:
        raise StoreUnavailable(f"the store did not commit: {exc.orig}") from exc


def _create_engine(url: str, schema: str | None) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        settings = {"search_path": schema} if schema else {}
        return create_async_engine(url, pool_pre_ping=True, pool_size=10, connect_args={"server_settings": settings})
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the relay read while intake writes; FULL sync makes a commit survive power loss.
    cursor = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def run_statements(conn: Connection, *statements: Executable) -> list[int]:
    """Execute statements in order in the caller's transaction; each one's row count (for `write`)."""
    return [int(conn.execute(statement).rowcount or 0) for statement in statements]
