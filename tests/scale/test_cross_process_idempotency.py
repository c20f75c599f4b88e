"""Several gateway processes share one PostgreSQL: a referral accepted by two of them at once is
stored once (the second finds the first, it does not fail), and their relays never claim the same
outbox row. Each `Store` here has its own engine and connections, as a separate process would."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, insert, select, text

from gateway.store import Store
from gateway.store.outbox import Outbox
from gateway.store.tables import outbox, referrals
from tests.conftest import POSTGRES_URL
from tests.store.test_group_commit import new_referral

PROCESSES = 3

pytestmark = pytest.mark.postgres


@pytest.fixture
async def stores(postgres_schema: str) -> AsyncIterator[list[Store]]:
    started = [Store(POSTGRES_URL, batch_max=64, schema=postgres_schema) for _ in range(PROCESSES)]
    await asyncio.gather(*(s.start() for s in started))
    yield started
    await asyncio.gather(*(s.stop() for s in started))


async def count(store: Store, table: object) -> int:
    async with store.door.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())  # type: ignore[arg-type]


async def wait_until_blocked_on_a_lock(store: Store, timeout: float = 10) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    async with asyncio.timeout(timeout):
        while True:
            async with store.door.read() as conn:
                if (await conn.execute(query)).scalar_one():
                    return
            await asyncio.sleep(0.02)


async def test_a_referral_committed_first_by_another_process_is_found_not_failed(
    stores: list[Store], caplog: pytest.LogCaptureFixture
) -> None:
    """Process B has inserted the referral but not yet committed; process A's batch inserts it too,
    waits on B's unique key, then violates it: group commit replays A's batch one write at a time
    and each write finds B's referral."""
    a, b = stores[0], stores[1]
    ubrn = uuid.uuid4().hex
    first, second = new_referral(ubrn), new_referral(ubrn)
    others = [new_referral(uuid.uuid4().hex) for _ in range(3)]  # share A's batch, must not suffer
    caplog.set_level(logging.INFO, logger="gateway.store.group_commit")
    async with b.door.engine.connect() as held:
        await held.execute(insert(referrals).values(first.row))
        racing = asyncio.gather(*(a.accept(n) for n in [second, *others]))
        await wait_until_blocked_on_a_lock(b)
        await held.commit()
    results = await racing
    assert "hit a constraint" in caplog.text, "A's batch did not reach the unique constraint"
    assert (results[0].created, results[0].referral.id) == (False, first.row["id"])
    assert all(r.created for r in results[1:])
    assert await count(a, referrals) == 4
    assert await count(a, outbox) == 3  # B's own event is B's to write; A added none for the duplicate


async def test_the_same_referrals_sent_to_every_process_at_once_are_each_stored_once(stores: list[Store]) -> None:
    ubrns = [uuid.uuid4().hex for _ in range(120)]
    sends = [(store, ubrn) for store in stores for ubrn in ubrns]
    random.shuffle(sends)
    results = await asyncio.gather(*(store.accept(new_referral(ubrn)) for store, ubrn in sends))
    by_id: dict[str, list[bool]] = {}
    for result in results:
        by_id.setdefault(result.referral.id, []).append(result.created)
    assert len(by_id) == len(ubrns)
    assert all(sorted(created) == [False] * (PROCESSES - 1) + [True] for created in by_id.values())
    assert await count(stores[0], referrals) == len(ubrns)
    assert await count(stores[0], outbox) == len(ubrns)


async def test_relays_in_two_processes_never_claim_the_same_outbox_row(stores: list[Store]) -> None:
    a, b = stores[0], stores[1]
    await asyncio.gather(*(a.accept(new_referral(uuid.uuid4().hex)) for _ in range(30)))
    async with Outbox(a).claim(10) as held:
        async with Outbox(b).claim(100) as other:
            assert len(held.rows) == 10 and len(other.rows) == 20
            assert not {r.seq for r in held.rows} & {r.seq for r in other.rows}
            other.published([(row, 0, i) for i, row in enumerate(other.rows)])
        held.published([(row, 1, i) for i, row in enumerate(held.rows)])
    async with Outbox(b).claim(100) as after:
        assert after.rows == []
