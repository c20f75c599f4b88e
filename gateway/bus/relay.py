"""The outbox relay: publishes committed outbox rows to Kafka (acks=all) and marks them sent.

It only ever reads what the store has committed, so Kafka is never written before the store. After a
crash it simply starts again from the rows not yet marked; after a broker outage it backs off, lets
the caller restore the topics (an embedded broker forgets them), and carries on.

A batch is one claim, its sends pipelined (each handed to the producer without waiting for the one
before; then all acknowledgements awaited together), and one mark of exactly the rows the broker
acknowledged. Within a batch one key's rows go in claim order to one partition, which keeps them in
order (the producer sends a partition's records in the order given, acks=all); a row that failed is
not marked, and the next claim sends it again, with what came after it.

Whether the broker has the batch's topics (one that restarted empty would acknowledge writes to
topics it lacks, and lose them) is asked once a poll interval and for a topic not yet seen there,
not per batch; after a broker error or `broker_back` it is asked again before the next send. Each
batch first makes sure the producer's connections are up (no request while they are): a broker that
went away fails the batch before anything is handed to the producer, which would otherwise hold
those records and send them, late, to whatever broker comes back.

A row marked published is only as safe as the broker's log. The relay watches that log (log_ends.py):
each batch's acknowledgements, and, once a poll interval, the metadata and the log ends, against how
far each partition had reached. A broker that lost records (restarted empty, a topic deleted or
truncated) is reported to the caller (`on_log_lost`), which publishes again what no receiver has
confirmed; until the caller has taken note, it is reported again. `broker_back` (the embedded broker
was started again) ends a back-off at once and checks the log in that round, not at the next poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, UnknownTopicOrPartitionError

from gateway.bus.kafka_config import client_options, producer_options
from gateway.bus.log_ends import LogEnds
from gateway.observability import metrics
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
        on_log_lost: Callable[[set[str], datetime], Awaitable[None]] | None = None,
    ) -> None:
        self._outbox = Outbox(store)
        self._kafka = kafka
        self._settings = settings
        self._on_broker_error = on_broker_error
        self._on_log_lost = on_log_lost  # (topics, lost what was published before this time)
        self._wake = asyncio.Event()
        self._retry_now = asyncio.Event()  # set by `broker_back`: the back-off ends at once
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._offsets: AIOKafkaConsumer | None = None  # no group: reads log ends only
        self._log: LogEnds | None = None  # from the store's marks at the first round, then from the acks
        self._lost: dict[str, datetime] = {}  # found lost, not yet taken note of by the caller
        self._log_checked = 0.0
        self._topics_there: set[str] = set()  # topics the broker had when last asked
        self._topics_checked = float("-inf")
        self.published = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Called after a commit that added outbox rows: publish now rather than at the next poll."""
        self._wake.set()

    def broker_back(self) -> None:
        """The broker is there again (the embedded one restarted, empty): publish now, and check in
        this round what its log still holds, so what it lost is published again at once."""
        self._log_checked = float("-inf")
        self._topics_checked = float("-inf")
        self._retry_now.set()
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
            self._wake.clear()  # a commit from here on is in this round or wakes the next
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
                if sent < self._settings.batch_size:  # the outbox held no more: wait for a commit or the poll
                    await self._idle()
                continue
            if await self._backed_off(backoff):
                backoff = self._settings.retry_backoff_s
            else:
                backoff = min(backoff * 2, self._settings.retry_backoff_max_s)

    async def _backed_off(self, seconds: float) -> bool:
        """Wait out a back-off; True when `broker_back` ended it early."""
        try:
            await asyncio.wait_for(self._retry_now.wait(), timeout=seconds)
        except TimeoutError:
            return False
        finally:
            self._retry_now.clear()
        return True

    async def _idle(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self._settings.poll_interval_s)
        except TimeoutError:
            pass

    async def _publish_batch(self) -> int:
        log_ends = await self._watch_log()  # before the claim: what a lost log needs again joins this batch
        async with self._outbox.claim(self._settings.batch_size) as claim:
            if not claim.rows:
                return 0
            producer = await self._producer_started()
            await self._topics_exist(producer, {r.topic for r in claim.rows})
            sent_at = now()
            sends = [
                await producer.send(r.topic, r.value.encode(), key=r.key.encode(), headers=_headers(r))
                for r in claim.rows
            ]
            results = await _acks(sends, self._settings.ack_timeout_s)
            done, failed = _in_key_order(claim.rows, results)
            # this batch is the first thing in a new log; what was published before it is gone
            self._note_lost(log_ends.acknowledged((TopicPartition(r.topic, p), o) for r, p, o in done), sent_at)
            claim.published(done)
            errors = [res for res in results if isinstance(res, BaseException)]
            claim.failed(failed, str(errors[0]) if errors else "")
        self.published += len(done)
        _count(done, failed)
        await self._report_lost()
        if errors:
            raise errors[0] if isinstance(errors[0], KafkaError) else KafkaError(str(errors[0]))
        return len(done)

    async def _topics_exist(self, producer: AIOKafkaProducer, topics: set[str]) -> None:
        """A broker that restarted empty (the embedded one keeps its log in memory) acknowledges writes
        to topics it does not have and loses them: ask it, once a poll interval or for a new topic.
        (Between two asks the log watch finds what such a broker lost: the acks start a new log.)"""
        fresh = time.monotonic() - self._topics_checked < self._settings.poll_interval_s
        if fresh and topics <= self._topics_there:
            await _connected(producer)
            return
        there = (await producer.client.fetch_all_metadata()).topics()
        self._topics_there, self._topics_checked = set(there), time.monotonic()
        missing = topics - self._topics_there
        if missing:
            raise UnknownTopicOrPartitionError(f"the broker has no topic {', '.join(sorted(missing))}")

    async def _watch_log(self) -> LogEnds:
        """How far the partitions had reached (from the store's marks, the first time); once a poll
        interval, whether the broker still holds them that far. Reports what was found lost."""
        if self._log is None:
            reached = await self._outbox.reached()
            self._log = LogEnds({TopicPartition(topic, p): end for (topic, p), end in reached.items()})
        known = self._log.partitions()
        if known and time.monotonic() - self._log_checked >= self._settings.poll_interval_s:
            lost = self._log.shorter(*await self._log_now(known))
            self._log.forget(lost)
            self._note_lost(lost, now())
            self._log_checked = time.monotonic()
        await self._report_lost()
        return self._log

    async def _log_now(self, known: list[TopicPartition]) -> tuple[dict[str, set[int]], dict[TopicPartition, int]]:
        """The broker's partitions of the topics of `known`, and the log ends of those of `known` it has."""
        metadata = await (await self._producer_started()).client.fetch_all_metadata()
        # the batch after this sends only to topics the broker has now: a topic found lost is not
        # written to again, on a broker that restarted without it, until the topics are restored
        self._topics_there, self._topics_checked = set(metadata.topics()), time.monotonic()
        partitions = {tp.topic: metadata.partitions_for_topic(tp.topic) or set() for tp in known}
        there = [tp for tp in known if tp.partition in partitions[tp.topic]]
        ends = await (await self._offsets_started()).end_offsets(there) if there else {}
        return partitions, ends

    def _note_lost(self, topics: set[str], since: datetime) -> None:
        """The broker lost what it held of `topics` before `since`."""
        if topics:
            log.warning("the broker lost records of %s", ", ".join(sorted(topics)))
        for topic in topics:
            self._lost[topic] = min(since, self._lost.get(topic, since))

    async def _report_lost(self) -> None:
        """Tell the caller what was found lost; what it has not taken note of (the store failing, say) is
        told again at the next round. Then the next batch goes through a new producer: a client keeps
        the partition counts it saw first, and a topic made again may have others (the restarted
        embedded broker makes a topic a client asks for with its default partitions), so the old one
        would go on writing to a partition the topic no longer has, found lost at every round."""
        if not self._lost:
            return
        while self._lost:
            since = min(self._lost.values())
            lost = {topic for topic, at in self._lost.items() if at == since}
            if self._on_log_lost is not None:
                await self._on_log_lost(lost, since)
            for topic in lost:
                del self._lost[topic]
        await self._close_producer()

    async def _offsets_started(self) -> AIOKafkaConsumer:
        if self._offsets is None:
            self._offsets = await _started(AIOKafkaConsumer(**client_options(self._kafka), enable_auto_commit=False))
        return self._offsets

    async def _producer_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = await _started(AIOKafkaProducer(**producer_options(self._kafka)))
        return self._producer

    async def _recover(self) -> None:
        self._topics_checked = float("-inf")  # the broker may have come back without them
        await self._close_producer()
        if self._on_broker_error is not None:
            try:
                await self._on_broker_error()
            except Exception as exc:  # the broker may still be down: the next round retries
                log.info("broker not ready yet: %s", exc)

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        offsets, self._offsets = self._offsets, None
        if producer is not None:
            await producer.stop()
        if offsets is not None:
            await offsets.stop()


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


async def _connected(producer: AIOKafkaProducer) -> None:
    """Raise when a broker the producer knows cannot be reached (a live connection is not asked)."""
    for broker in producer.client.cluster.brokers():
        if not await producer.client.ready(broker.nodeId):
            raise KafkaConnectionError(f"the broker {broker.host}:{broker.port} cannot be reached")


Sent = tuple[OutboxRow, int, int]  # a row, and where the broker put it: partition, offset


def _in_key_order(rows: list[OutboxRow], results: list[Any]) -> tuple[list[Sent], list[OutboxRow]]:
    """The rows to mark sent (row, partition, offset) and those to send again: a row that failed, and
    every later row of its key, acknowledged or not, so that one key's events are sent again in order."""
    done: list[Sent] = []
    failed: list[OutboxRow] = []
    stopped: set[str] = set()
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, BaseException) or row.key in stopped:
            failed.append(row)
            stopped.add(row.key)
        else:
            done.append((row, result.partition, result.offset))
    return done, failed


def _count(done: list[tuple[OutboxRow, int, int]], failed: list[OutboxRow]) -> None:
    at = now()
    for row, _, _ in done:
        metrics.published(row.topic, (at - row.created_at).total_seconds())
    for row in failed:
        metrics.publish_failed(row.topic)


def _headers(row: OutboxRow) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in row.headers.items()]


Client = TypeVar("Client", AIOKafkaConsumer, AIOKafkaProducer)


async def _started(client: Client) -> Client:
    """`client` started; stopped again if starting fails half way (no connection left open)."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
    return client
