"""What a consumer holds between fetching records and committing their offsets. Pure: no I/O.

`Schedule` keeps fetched records until they are due (a retry waits for its time; an event is due at
once), per partition, so a retry due in an hour does not block one due now. `Progress` says how far
each partition may be committed: up to, not past, the first record not yet handled, so no record is
ever skipped even when later ones finish first.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aiokafka import TopicPartition

Item = TypeVar("Item")


@dataclass(order=True)
class _Entry(Generic[Item]):
    due: float
    offset: int
    item: Item = field(compare=False)


class Schedule(Generic[Item]):
    def __init__(self) -> None:
        self._waiting: dict[TopicPartition, list[_Entry[Item]]] = defaultdict(list)
        self._held_until: dict[TopicPartition, float] = {}

    def add(self, tp: TopicPartition, offset: int, due: float, item: Item) -> None:
        heapq.heappush(self._waiting[tp], _Entry(due, offset, item))

    def take_due(self, now: float) -> list[tuple[TopicPartition, int, Item]]:
        """The earliest due record of each partition that is not held: at most one per partition."""
        taken = []
        for tp, entries in self._waiting.items():
            if entries and entries[0].due <= now and self._held_until.get(tp, 0.0) <= now:
                entry = heapq.heappop(entries)
                taken.append((tp, entry.offset, entry.item))
        return taken

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

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def drop(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._open.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
