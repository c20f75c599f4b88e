"""The outbox relay: publishes committed outbox rows to Kafka (acks=all) and marks them sent.

It only ever reads what the store has committed, so Kafka is never written before the store. After a
crash it simply starts again from the rows not yet marked; after a broker outage it backs off, lets
the caller restore the topics (an embedded broker forgets them), and carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, UnknownTopicOrPartitionError

from gateway.bus.kafka_config import producer_options
from gateway.monitoring import metrics
from gateway.settings import KafkaSettings, RelaySettings
from gateway.store.outbox import Outbox, OutboxRow
from gateway.store.store import Store, now

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        store: Store,
        kafka: KafkaSettings,
        settings: RelaySettings,
        on_broker_error: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._outbox = Outbox(store)
        self._kafka = kafka
        self._settings = settings
        self._on_broker_error = on_broker_error
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self.published = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Called after a commit that added outbox rows: publish now rather than at the next poll."""
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._close_producer()

    async def _run(self) -> None:
        backoff = self._settings.retry_backoff_s
        while True:
            try:
                sent = await self._publish_batch()
                backoff = self._settings.retry_backoff_s
            except (KafkaError, OSError) as exc:
                log.warning("publishing failed (%s); retrying in %.1fs", exc, backoff)
                await self._recover()
            except Exception:  # the store failing, say: the relay must outlive it, the rows wait
                log.exception("the relay failed; retrying in %.1fs", backoff)
                await self._recover()
            else:
                if sent == 0:
                    await self._idle()
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._settings.retry_backoff_max_s)

    async def _idle(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self._settings.poll_interval_s)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _publish_batch(self) -> int:
        async with self._outbox.claim(self._settings.batch_size) as claim:
            if not claim.rows:
                return 0
            producer = await self._producer_started()
            await _topics_exist(producer, {r.topic for r in claim.rows})
            sends = [
                await producer.send(r.topic, r.value.encode(), key=r.key.encode(), headers=_headers(r))
                for r in claim.rows
            ]
            results = await _acks(sends, self._settings.ack_timeout_s)
            done = [
                (row, res.partition, res.offset)
                for row, res in zip(claim.rows, results, strict=True)
                if not isinstance(res, BaseException)
            ]
            failed = [row for row, res in zip(claim.rows, results, strict=True) if isinstance(res, BaseException)]
            await claim.published(done)
            errors = [res for res in results if isinstance(res, BaseException)]
            await claim.failed(failed, str(errors[0]) if errors else "")
        self.published += len(done)
        _count(done, failed)
        if errors:
            raise errors[0] if isinstance(errors[0], KafkaError) else KafkaError(str(errors[0]))
        return len(done)

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(**producer_options(self._kafka))
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _recover(self) -> None:
        await self._close_producer()
        if self._on_broker_error is not None:
            try:
                await self._on_broker_error()
            except Exception as exc:  # the broker may still be down: the next round retries
                log.info("broker not ready yet: %s", exc)

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


async def _topics_exist(producer: AIOKafkaProducer, topics: set[str]) -> None:
    """A broker that restarted empty (the embedded one keeps its log in memory) acknowledges writes to
    topics it does not have and loses them: ask it first, one metadata round trip per batch."""
    missing = topics - (await producer.client.fetch_all_metadata()).topics()
    if missing:
        raise UnknownTopicOrPartitionError(f"the broker has no topic {', '.join(sorted(missing))}")


async def _acks(sends: list[asyncio.Future[Any]], timeout: float) -> list[Any]:
    """Each send's metadata or error. A broker that came back without the topics (the embedded one
    forgets them) makes the client retry until its own, much longer, time-out: past `timeout` the
    rows count as failed, so the relay recovers (restores the topics) and sends them again."""
    _, pending = await asyncio.wait(sends, timeout=timeout)
    for future in pending:
        future.cancel()
    return [
        KafkaTimeoutError("no acknowledgement in time") if f in pending else (f.exception() or f.result())
        for f in sends
    ]


def _count(done: list[tuple[OutboxRow, int, int]], failed: list[OutboxRow]) -> None:
    at = now()
    for row, _, _ in done:
        metrics.published(row.topic, (at - row.created_at).total_seconds())
    for row in failed:
        metrics.publish_failed(row.topic)


def _headers(row: OutboxRow) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in row.headers.items()]
