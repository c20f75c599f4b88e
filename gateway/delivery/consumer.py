"""One member of a delivery consumer group: fetches records, hands each to the spine when it is due,
and commits offsets only past records the spine has handled.

- Offsets are never auto-committed. A partition is committed up to, not past, its first record not
  yet handled, at most every second, when idle, for the partitions a rebalance takes away, and on stop.
- A record is taken at its due time (a retry waits; an event is due at once), one per partition at a
  time, partitions in parallel; or, `by_key`, one per key (the patient, the record's Kafka key) at a
  time, in offset order, records of other keys, of the same partition or not, alongside, up to
  `max_in_flight` at once. Fetching goes on meanwhile. Either way one patient's events keep their order.
- A rebalance waits for the records in hand of the partitions it takes away, commits what is done
  and forgets the rest: the next owner reads them again from the committed offset, and the spine
  makes a second look harmless.
- When handling fails for a reason that is not the receiver's (the store is down), the partition is
  held and the same record tried again: nothing is skipped.
- A partition is read again from its earliest offset when the broker lost its topic's log (`rewind`,
  which the relay's watch on the log asks for) and when its position lies past its log's end (offsets
  from a lost log): fetching there would wait forever. Positions from a lost log are never committed.
- When the relay finds the log lost, the member also joins again with a new client (`renew`): a
  client keeps the partition counts it saw first, and the embedded broker, restarted, makes a topic a
  client asks for before the gateway restores it with its own default partitions.
- A new group told to start at "latest" starts where the log ends (bus/end_offsets.py), found before
  the member says it has joined: nothing from before it, nothing after it skipped.
Must not: decide what becomes of a record (deliver.py does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Hashable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from gateway.bus.end_offsets import end_offsets
from gateway.bus.kafka_config import client_options, consumer_options
from gateway.delivery.schedule import Progress, Rewinds, Schedule
from gateway.errors import BrokerUnavailable
from gateway.settings import KafkaSettings

log = logging.getLogger(__name__)

Handler = Callable[[ConsumerRecord], Awaitable[None]]
COMMIT_INTERVAL_S = 1.0
IDLE_POLL_S = 1.0
HOLD_AFTER_FAILURE_S = 2.0
FETCH_MAX_RECORDS = 500
POSITION_WAIT_S = 1.0
BUSY_POLL_S = 0.05  # with records in hand and room for more: how often to look for new ones


class DeliveryConsumer:
    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        topics: list[str],
        handle: Handler,
        due_at: Callable[[ConsumerRecord], float],
        max_waiting: int,
        stop_grace_s: float,
        start_at: str = "earliest",
        by_key: bool = False,
        max_in_flight: int | None = None,
    ) -> None:
        self.group_id = group_id
        self._kafka = kafka
        self._topics = topics
        self._handle = handle
        self._due_at = due_at
        self._max_waiting = max_waiting
        self._stop_grace_s = stop_grace_s
        self._start_at = start_at
        self._by_key = by_key
        self._max_in_flight = max_in_flight
        self._in_flight: dict[asyncio.Task[None], TopicPartition] = {}  # records being handled
        self._busy: set[Hashable] = set()  # their keys: nothing more of these is taken meanwhile
        self.joined = asyncio.Event()  # set once the group gave this member its partitions
        self._schedule: Schedule[ConsumerRecord] = Schedule()
        self._progress = Progress()
        self._lock = asyncio.Lock()  # one round, or one rebalance, at a time
        self._rewinds = Rewinds()  # topics whose log the broker lost: read again from the start
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_commit = 0.0
        self._throttled: set[TopicPartition] = set()  # paused by `_throttle`, which resumes only these
        self.handled = 0

    async def start(self) -> None:
        if self._task is not None:
            return
        options = {**consumer_options(self._kafka, self.group_id), "auto_offset_reset": self._start_at}
        consumer = AIOKafkaConsumer(**options)
        consumer.subscribe(self._topics, listener=_Rebalance(self, consumer))
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise BrokerUnavailable(f"delivery group {self.group_id} cannot reach Kafka: {exc}") from exc
        self._consumer, self._stopping = consumer, False
        self._task = asyncio.create_task(self._run(), name=f"delivery-{self.group_id}")

    async def stop(self) -> None:
        """Finish the records in hand (within the grace time), commit what is done, leave the group."""
        await self._halt(commit=True)

    async def leave(self) -> bool:
        """The broker lost a log (restarted empty, a topic made again): stop this member's client, as the
        first half of joining again with a new one (`rejoin`). A client keeps the partition counts it
        saw first, and one that asked the restarted broker for a topic before the gateway restored it
        had it made with the broker's default partitions; a client made after the topics are restored
        sees them as they are. What this member had fetched and would commit belongs to the lost log:
        it is dropped, not committed, and `rewind` has it read again. False if it was not running."""
        if self._task is None:
            return False
        await self._halt(commit=False)
        self._schedule, self._progress = Schedule(), Progress()
        self.joined.clear()
        return True

    async def rejoin(self) -> None:
        """Join again with a new client after `leave`, trying until the broker takes it: this member
        must not stay out."""
        while True:
            try:
                await self.start()
                break
            except Exception as exc:
                log.warning("delivery group %s: joining again failed (%s); trying again", self.group_id, exc)
                await asyncio.sleep(IDLE_POLL_S)
        log.info("delivery group %s: joined again with a new client", self.group_id)

    async def _halt(self, commit: bool) -> None:
        task, self._task = self._task, None
        consumer = self._consumer
        if consumer is None:
            return
        self._stopping = True
        try:
            if task is not None:  # None: a halt cancelled half way, its client not yet stopped
                await asyncio.wait_for(task, timeout=self._stop_grace_s)
        except TimeoutError:
            log.warning("delivery group %s: stopped a delivery half way; it will be redelivered", self.group_id)
        except Exception:
            log.exception("delivery group %s: the consumer loop had failed", self.group_id)
        if commit:
            async with self._lock:
                await self._commit(consumer)
        self._consumer = None
        await consumer.stop()

    def rewind(self, topics: Collection[str]) -> None:
        """The broker lost these topics' log and is given the unconfirmed events again: read their
        partitions again from the earliest offset, at the next round, or once this member has some of
        them (a rebalance may be under way). What was delivered already is recognised by the spine."""
        self._rewinds.ask(set(topics) & set(self._topics))

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        try:
            while not self._stopping:
                try:
                    await self._round(consumer)
                except (KafkaError, OSError) as exc:
                    log.warning("delivery group %s: %s; trying again", self.group_id, exc)
                    await asyncio.sleep(IDLE_POLL_S)
            if self._in_flight:  # stopping: finish what is in hand (stop's grace time bounds this)
                await asyncio.wait(list(self._in_flight))
        finally:
            for task in self._in_flight:  # stopped half way: not handled, so not committed
                task.cancel()

    async def _round(self, consumer: AIOKafkaConsumer) -> None:
        async with self._lock:
            await self._read_again(consumer)  # before fetching: nothing fetched is dropped if this fails
        wait_ms = 0 if self._in_flight else self._wait_ms()  # in hand: look at what came, then wait below
        batch = await consumer.getmany(timeout_ms=wait_ms, max_records=FETCH_MAX_RECORDS)
        async with self._lock:
            assigned = consumer.assignment()
            for tp, records in batch.items():
                if tp in assigned and not self._rewinds.stale(tp):  # else read again from the start
                    for record in records:
                        self._progress.fetched(tp, record.offset)
                        self._schedule.add(tp, record.offset, self._due_at(record), record, self._order_key(tp, record))
            self._start_due()
            if not self._in_flight or time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S:
                await self._commit(consumer)
            self._throttle(consumer)
        if self._in_flight:
            await self._some_finished()

    def _start_due(self) -> None:
        room = None if self._max_in_flight is None else self._max_in_flight - len(self._in_flight)
        if room is not None and room <= 0:
            return
        for tp, _, record in self._schedule.take_due(time.time(), self._busy, room):
            key = self._order_key(tp, record)
            self._busy.add(key)
            task = asyncio.create_task(self._handle_one(tp, record, key))
            self._in_flight[task] = tp
            task.add_done_callback(self._in_flight.pop)

    async def _some_finished(self) -> None:
        """Wait for a record in hand to finish; with room for more, no longer than a short poll (new
        records may have come, a retry may fall due). Records due but waiting behind one of their key
        in hand wait for it: they are no reason to look sooner."""
        full = self._max_in_flight is not None and len(self._in_flight) >= self._max_in_flight
        timeout = IDLE_POLL_S if full else BUSY_POLL_S
        await asyncio.wait(list(self._in_flight), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)

    async def _handle_one(self, tp: TopicPartition, record: ConsumerRecord, key: Hashable) -> None:
        try:
            await self._handle(record)
        except Exception:  # not the receiver's doing (the store, a bug): never skip the record
            log.exception("delivery group %s: handling %s/%s failed; trying again", self.group_id, tp, record.offset)
            self._schedule.add(tp, record.offset, 0.0, record, key)
            self._schedule.hold(tp, time.time() + HOLD_AFTER_FAILURE_S)
            return
        finally:
            self._busy.discard(key)
        self._progress.handled(tp, record.offset)
        self.handled += 1

    def _order_key(self, tp: TopicPartition, record: ConsumerRecord) -> Hashable:
        """What one at a time is kept for: by key, the record's key (one patient's events, on whichever
        topic), and a record with no key waits for the one before it in its partition; else the partition."""
        key: bytes | None = record.key
        return key if self._by_key and key is not None else tp

    async def _read_again(self, consumer: AIOKafkaConsumer) -> None:
        """Seek to their earliest offset the partitions of rewound topics and those past their log's end,
        forgetting what is in hand of them; that offset is committed next, over any from the lost log."""
        assignment, assigned = self._rewinds.assignment, consumer.assignment()
        rewound = self._rewinds.due(assigned)
        again = rewound | await self._past_end(consumer, assigned - rewound)
        again = {tp for tp in again if tp.partition in (consumer.partitions_for_topic(tp.topic) or ())}  # not gone
        if not again:
            return
        starts = await consumer.beginning_offsets(list(again))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
            self._schedule.drop([tp])
            self._progress.restarted(tp, offset)
        self._rewinds.sought(starts, assignment)
        log.warning("delivery group %s: reading %d partitions again from their start", self.group_id, len(again))

    async def _past_end(self, consumer: AIOKafkaConsumer, tps: set[TopicPartition]) -> set[TopicPartition]:
        """The partitions whose position lies past their log's end: the log it was in is gone (a broker
        restarted empty, a topic truncated, an offset committed in the lost log). Apache Kafka answers
        a fetch there with OFFSET_OUT_OF_RANGE, which aiokafka resets; Tansu answers with nothing."""
        past = set()
        for tp in tps:
            end = consumer.highwater(tp)  # from this assignment's last fetch of tp
            if end is None:
                continue
            try:
                position = await asyncio.wait_for(consumer.position(tp), POSITION_WAIT_S)
            except TimeoutError:  # being reset: nothing to judge by yet
                continue
            if position > end:
                log.warning("delivery group %s: %s is at %d, past its log's end %d", self.group_id, tp, position, end)
                past.add(tp)
        return past

    def _wait_ms(self) -> int:
        next_due = self._schedule.next_due()
        wait = IDLE_POLL_S if next_due is None else min(IDLE_POLL_S, max(0.0, next_due - time.time()))
        return int(wait * 1000)

    async def _commit(self, consumer: AIOKafkaConsumer, tps: set[TopicPartition] | None = None) -> None:
        assignment, assigned = self._rewinds.assignment, consumer.assignment()
        committable = self._progress.committable(tps).items()
        offsets = {tp: o for tp, o in committable if tp in assigned and not self._rewinds.stale(tp)}
        self._last_commit = time.monotonic()
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            log.warning(
                "delivery group %s: a rebalance overtook the commit (%s); records will be read again",
                self.group_id,
                exc,
            )
            return
        except KafkaError as exc:
            log.warning("delivery group %s: commit failed (%s); trying again later", self.group_id, exc)
            return
        self._progress.committed(offsets)
        self._rewinds.committed(offsets, assigned, assignment)

    def _throttle(self, consumer: AIOKafkaConsumer) -> None:
        """Stop fetching a partition while too many of its records wait in memory (retries not yet due)."""
        paused = consumer.paused()
        for tp in consumer.assignment():
            waiting = self._schedule.waiting(tp)
            if waiting >= self._max_waiting and tp not in paused:
                consumer.pause(tp)
                self._throttled.add(tp)
            elif tp in self._throttled and waiting < self._max_waiting // 2:
                consumer.resume(tp)
                self._throttled.discard(tp)

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            in_hand = [task for task, tp in self._in_flight.items() if tp in revoked]
            if in_hand:  # their outcome is recorded and committed before the next owner reads them
                await asyncio.wait(in_hand)
            if self._consumer is not None:
                await self._commit(self._consumer, revoked)
            self._schedule.drop(revoked)
            self._progress.drop(revoked)
        log.info("delivery group %s: gave up %d partitions", self.group_id, len(revoked))

    async def _assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        self._rewinds.assigned()
        if self._start_at == "latest":
            await self._start_new_at_end(consumer, assigned)
        log.info("delivery group %s: took %d partitions", self.group_id, len(assigned))
        self.joined.set()

    async def _start_new_at_end(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Partitions the group never committed on start at their log's end as a reader sees it
        (bus/end_offsets.py). aiokafka's own reset asks ListOffsets, which the embedded broker answers
        within the last batch: the group would take records from before it existed. The partitions
        are paused before this first waits, so nothing is fetched from where that reset puts them."""
        consumer.pause(*assigned)
        try:
            fresh = [tp for tp in sorted(assigned) if await consumer.committed(tp) is None]
            if fresh:
                for tp, end in (await self._log_ends(fresh)).items():
                    consumer.seek(tp, end)
        except (KafkaError, OSError) as exc:
            log.warning("delivery group %s: new partitions start where ListOffsets says (%s)", self.group_id, exc)
        finally:
            consumer.resume(*assigned)

    async def _log_ends(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Read by a consumer of no group: one in a group cannot be assigned partitions to fetch from."""
        probe = AIOKafkaConsumer(**client_options(self._kafka), enable_auto_commit=False)
        await probe.start()
        try:
            return await end_offsets(probe, tps)
        finally:
            await probe.stop()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: DeliveryConsumer, consumer: AIOKafkaConsumer) -> None:
        self._owner = owner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._owner._assigned(self._consumer, assigned)
