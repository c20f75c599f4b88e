"""How far each partition's log had reached when Kafka acknowledged records to the relay, and which
topics a broker has since lost records of. Pure: no I/O.

A broker restarted empty (the embedded one keeps its log in memory), a topic deleted and made again
(by an administrator, or by a client's metadata request where topics are created automatically), a
partition truncated by an unclean leader election: seen from here, each is a partition whose log now
ends before an offset it acknowledged, or that is gone. A partition's offsets only ever grow, so the
two signs are exact for what was acknowledged:

- a batch acknowledged below where its partition's log had reached before the batch was sent;
- a partition missing from the metadata, or a log end (ListOffsets) below where the log had reached.

Where a log "had reached" is one past the first record of the latest batch acknowledged on it, not
past the last: a broker may report a log's end at the start of its last batch (Tansu does). A log
emptied, or truncated to before that batch, is still found.

A topic counts as lost as a whole (one made again has lost every partition, and its keys may map to
other partitions now); publishing an unconfirmed event once more is harmless (delivery is idempotent
by event id).
Must not: decide what to publish again (the store's outbox does, from what receivers confirmed).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from aiokafka import TopicPartition


class LogEnds:
    def __init__(self, reached: Mapping[TopicPartition, int] | None = None) -> None:
        self._reached: dict[TopicPartition, int] = dict(reached or {})  # one past the latest batch's first

    def partitions(self) -> list[TopicPartition]:
        return sorted(self._reached)

    def acknowledged(self, acks: Iterable[tuple[TopicPartition, int]]) -> set[str]:
        """Take one batch's acknowledgements; returns the topics where one lies below where the log had
        reached: those logs are new, and this batch is the first thing in them."""
        first: dict[TopicPartition, int] = {}
        for tp, offset in acks:
            first[tp] = min(offset, first.get(tp, offset))
        behind = {tp.topic for tp, offset in first.items() if offset < self._reached.get(tp, 0)}
        self.forget(behind)
        self._reached.update((tp, offset + 1) for tp, offset in first.items())
        return behind

    def shorter(self, partitions: Mapping[str, Collection[int]], ends: Mapping[TopicPartition, int]) -> set[str]:
        """The topics that lack a partition which had records (`partitions`: what the metadata lists),
        or whose log now ends (`ends`) before where it had reached."""
        return {
            tp.topic
            for tp, reached in self._reached.items()
            if tp.partition not in partitions.get(tp.topic, ()) or ends.get(tp, reached) < reached
        }

    def forget(self, topics: Collection[str]) -> None:
        """What these topics' lost logs had reached no longer says anything about their new ones."""
        for tp in [tp for tp in self._reached if tp.topic in topics]:
            del self._reached[tp]
