"""Reads the gateway's events back from the broker while a benchmark runs, noting when each arrived."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from bench.harness import poll


@dataclass
class Arrivals:
    count: int = 0
    last_at: float = 0.0
    subjects: set[bytes] = field(default_factory=set)


class TopicWatcher:
    """Counts the events on some topics (from their start: each benchmark has a broker of its own)."""

    def __init__(self, servers: str, *topics: str) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics, bootstrap_servers=servers, auto_offset_reset="earliest", enable_auto_commit=False
        )
        self.arrivals = Arrivals()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    async def wait_for(self, count: int, timeout_s: float) -> bool:
        return await poll(lambda: self.arrivals.count >= count, 0.01, timeout_s)

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    subject = dict(record.headers).get("ce_subject", b"")
                    self.arrivals.subjects.add(subject)
                self.arrivals.count += len(records)
                if records:
                    self.arrivals.last_at = now
