"""What a consumer holds between fetching records and committing their offsets. Pure: no I/O.

`Schedule` keeps fetched records until they are due (a retry waits for its time; an event is due at
once), per partition, so a retry due in an hour does not block one due now. Records of one key (the
patient) are taken one at a time, in the order they are due, and never past one of that key still in
hand; records of different keys are taken together, up to a limit. `Progress` says how far
each partition may be committed: up to, not past, the first record not yet handled, so no record is
ever skipped even when later ones finish first. `Rewinds` says which partitions must be read again
from the start of their log, because the broker lost the log their positions were in.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Collection, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aiokafka import TopicPartition

Item = TypeVar("Item")


@dataclass(order=True)
class _Entry(Generic[Item]):
    due: float
    offset: int
    key: Hashable = field(compare=False)
    item: Item = field(compare=False)


class Schedule(Generic[Item]):
    def __init__(self) -> None:
        self._waiting: dict[TopicPartition, list[_Entry[Item]]] = defaultdict(list)
        self._held_until: dict[TopicPartition, float] = {}

    def add(self, tp: TopicPartition, offset: int, due: float, item: Item, key: Hashable | None = None) -> None:
        """`key` orders records (one at a time, by due time then offset); none: the partition's."""
        heapq.heappush(self._waiting[tp], _Entry(due, offset, tp if key is None else key, item))

    def take_due(
        self, now: float, busy: Collection[Hashable] = (), limit: int | None = None
    ) -> list[tuple[TopicPartition, int, Item]]:
        """Due records of partitions not held, at most one per key and none of a key in `busy` (in
        hand) or of a key whose earlier record waits: so one key's records keep their order. The
        partitions take turns, so one with a long backlog does not keep the others waiting."""
        taken: list[tuple[TopicPartition, int, Item]] = []
        seen: set[Hashable] = set(busy)
        skipped: list[tuple[TopicPartition, _Entry[Item]]] = []
        turns = [tp for tp in self._waiting if self._held_until.get(tp, 0.0) <= now]
        while turns and (limit is None or len(taken) < limit):
            for tp in list(turns):
                entry = self._next_free(tp, now, seen, skipped)
                if entry is None:
                    turns.remove(tp)
                    continue
                taken.append((tp, entry.offset, entry.item))
                if limit is not None and len(taken) >= limit:
                    break
        for tp, entry in skipped:
            heapq.heappush(self._waiting[tp], entry)
        return taken

    def _next_free(
        self, tp: TopicPartition, now: float, seen: set[Hashable], skipped: list[tuple[TopicPartition, _Entry[Item]]]
    ) -> _Entry[Item] | None:
        """The partition's next due record of a key not seen yet (that key is seen from then on)."""
        entries = self._waiting[tp]
        while entries and entries[0].due <= now:
            entry = heapq.heappop(entries)
            if entry.key in seen:
                skipped.append((tp, entry))
                continue
            seen.add(entry.key)
            return entry
        return None

    def hold(self, tp: TopicPartition, until: float) -> None:
        """Nothing more from this partition before `until` (after a failure that was not the receiver's)."""
        self._held_until[tp] = until

    def next_due(self) -> float | None:
        times = [max(e[0].due, self._held_until.get(tp, 0.0)) for tp, e in self._waiting.items() if e]
        return min(times, default=None)

    def waiting(self, tp: TopicPartition) -> int:
        return len(self._waiting.get(tp, ()))

    def drop(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._waiting.pop(tp, None)
            self._held_until.pop(tp, None)


class Progress:
    def __init__(self) -> None:
        self._open: dict[TopicPartition, set[int]] = defaultdict(set)  # fetched, not yet handled
        self._next: dict[TopicPartition, int] = {}  # one past the highest offset fetched
        self._committed: dict[TopicPartition, int] = {}

    def fetched(self, tp: TopicPartition, offset: int) -> None:
        self._open[tp].add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def handled(self, tp: TopicPartition, offset: int) -> None:
        self._open[tp].discard(offset)

    def committable(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Offsets to commit now, for partitions that moved since the last commit."""
        offsets = {}
        for tp in self._next if tps is None else tps:
            if tp not in self._next:
                continue
            open_ = self._open.get(tp)
            position = min(open_) if open_ else self._next[tp]
            if position != self._committed.get(tp):
                offsets[tp] = position
        return offsets

    def restarted(self, tp: TopicPartition, offset: int) -> None:
        """Reading `tp` starts again at `offset`: what was fetched is forgotten, and `offset` is committed
        next, even below an offset committed before (the log that one was in is gone)."""
        self._open.pop(tp, None)
        self._next[tp] = offset
        self._committed.pop(tp, None)

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def drop(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._open.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)


class Rewinds:
    """Topics whose log the broker lost, to be read again from the start. Offsets committed before the
    loss was found may belong to the lost log, and the group may be replacing the assignment as the
    rewind is asked for; so a topic is done only once every partition this member has of it was sought
    to its start within one assignment and that position was committed. Until then, a partition of it
    not yet sought in this assignment has its records skipped and its position never committed."""

    def __init__(self) -> None:
        self._topics: set[str] = set()
        self.assignment = 0  # counts the assignments the group gave this member
        self._sought: set[TopicPartition] = set()  # in this assignment
        self._committed: set[TopicPartition] = set()  # sought, and that start committed, in this assignment

    def ask(self, topics: Iterable[str]) -> None:
        """A log found lost again: what an earlier rewind sought and committed in this assignment was
        in the log now gone, so the topics' partitions are sought to their start once more."""
        topics = set(topics)
        self._topics.update(topics)
        self._sought = {tp for tp in self._sought if tp.topic not in topics}
        self._committed = {tp for tp in self._committed if tp.topic not in topics}

    def assigned(self) -> None:
        """A new assignment: its positions come from committed offsets, which may be the lost log's."""
        self.assignment += 1
        self._sought.clear()
        self._committed.clear()

    def due(self, assigned: Iterable[TopicPartition]) -> set[TopicPartition]:
        return {tp for tp in assigned if self.stale(tp)}

    def stale(self, tp: TopicPartition) -> bool:
        """Whether the position of `tp` may be in a lost log (not yet sought to its start in this assignment)."""
        return tp.topic in self._topics and tp not in self._sought

    def sought(self, tps: Iterable[TopicPartition], assignment: int) -> None:
        if assignment == self.assignment:
            self._sought.update(tps)

    def committed(self, tps: Iterable[TopicPartition], assigned: Iterable[TopicPartition], assignment: int) -> None:
        if assignment != self.assignment:
            return
        self._committed.update(set(tps) & self._sought)
        mine = list(assigned)
        for topic in list(self._topics):
            of_topic = {tp for tp in mine if tp.topic == topic}
            if of_topic and of_topic <= self._committed:
                self._topics.discard(topic)
