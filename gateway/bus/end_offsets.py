"""Where each partition's log ends, as a reader sees it: the figure the monitor shows and the topic
browser reads up to.

ListOffsets (aiokafka's `end_offsets`) is exact on Apache Kafka. The embedded broker (Tansu 0.6)
answers it with one past the *first* record of a partition's last batch, so after a batch of several
records it reports an end short of the log and hides the rest of that batch from whatever stops
there. A fetch's high watermark is exact on both, so each partition with records is also fetched from
just before its reported end, and the larger figure is its end. The relay's check for lost logs
(log_ends.py) reasons with the short answer itself and asks ListOffsets alone.
Must not: commit offsets or join a group (the consumer given has no group).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

FETCH_WAIT_S = 2.0


async def end_offsets(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
    """Each partition's end offset. Leaves `consumer` with nothing assigned."""
    ends: dict[TopicPartition, int] = await consumer.end_offsets(list(tps))
    held = [tp for tp, end in ends.items() if end > 0]
    if not held:
        return ends
    consumer.assign(held)
    try:
        for tp in held:
            consumer.seek(tp, ends[tp] - 1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FETCH_WAIT_S
        while any(consumer.highwater(tp) is None for tp in held) and loop.time() < deadline:
            await consumer.getmany(*held, timeout_ms=100, max_records=1)
        seen = {tp: consumer.highwater(tp) or 0 for tp in held}
        return {tp: max(end, seen.get(tp, 0)) for tp, end in ends.items()}
    finally:
        consumer.unsubscribe()
