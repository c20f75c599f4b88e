"""When the broker lost a log, the outbox sends again exactly the copies unconfirmed deliveries wait
for: an event not yet read, the retry a retrying delivery waits on; never what a receiver confirmed,
nor what went to the new log. And a retry long overdue is sent again whether or not a loss was seen
(delivery/overdue.py). On each store."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import select

from gateway.bus.events import new_event
from gateway.delivery.overdue import OverdueRetries
from gateway.settings import DeliverySettings
from gateway.store.deliveries import DEAD_LETTERED, DELIVERED, RETRYING, Deliveries, DeliveryKey, Outcome
from gateway.store.outbox import Outbox
from gateway.store.store import OutboxEvent, Store, now
from gateway.store.tables import outbox

MSK, RETRY, AUDIT = "referrals.msk-pain", "referrals.retry", "gateway.audit"


def event(topic: str) -> OutboxEvent:
    return new_event(
        topic=topic,
        key="9434765919",
        event_type="t",
        source="s",
        subject="ServiceRequest/r",
        value="{}",
        correlation_id="c",
    )


async def publish(store: Store, *events: OutboxEvent, first: int = 0) -> None:
    """Enqueue, then mark published as the relay does, one batch: partition 0, from offset `first`."""
    for e in events:
        await store.enqueue([e], "r")
    async with Outbox(store).claim(100) as claim:
        seen: Counter[str] = Counter()
        marked = []
        for row in claim.rows:
            marked.append((row, 0, first + seen[row.topic]))
            seen[row.topic] += 1
        claim.published(marked)


async def settle(
    store: Store, e: OutboxEvent, status: str, retry: OutboxEvent | None = None, due: datetime | None = None
) -> None:
    key = DeliveryKey(e.event_id, "svc", "r", "t", MSK, 0, 0)
    steps: tuple[tuple[str, dict[str, object]], ...] = (("test", {}),)
    outcome = Outcome(status, 1, steps, retry_id=retry.event_id if retry else None, next_attempt_at=due, record=retry)
    assert await Deliveries(store).record(key, None, outcome)


async def marks(store: Store) -> dict[str, tuple[bool, int | None]]:
    async with store.door.read() as conn:
        rows = (await conn.execute(select(outbox.c.event_id, outbox.c.published_at, outbox.c.offset))).all()
    return {event_id: (published is not None, offset) for event_id, published, offset in rows}


async def test_only_the_copies_unconfirmed_deliveries_wait_for_are_published_again(store: Store) -> None:
    delivered, retrying, unread, dead, audit = event(MSK), event(MSK), event(MSK), event(MSK), event(AUDIT)
    await publish(store, delivered, retrying, unread, dead, audit)
    retry = event(RETRY)
    await settle(store, delivered, DELIVERED)
    await settle(store, retrying, RETRYING, retry)
    await settle(store, dead, DEAD_LETTERED)
    await publish(store)  # the retry record the delivery enqueued
    lost_at = now()
    in_new_log = event(MSK)
    await publish(store, in_new_log)

    again = await Outbox(store).republish_lost({MSK, RETRY, AUDIT}, lost_at, delivered=[MSK], retries=RETRY)

    after = await marks(store)
    assert again == 2
    assert after[unread.event_id] == (False, None) and after[retry.event_id] == (False, None)
    for kept in (delivered, retrying, dead, audit):
        assert after[kept.event_id] == (True, None), "published once, its position in the lost log forgotten"
    assert after[in_new_log.event_id] == (True, 0), "what went to the new log stays as it is"


async def test_how_far_each_log_reached_is_the_first_offset_of_its_latest_batch(store: Store) -> None:
    await publish(store, event(MSK), event(MSK), event(MSK))
    assert await Outbox(store).reached() == {(MSK, 0): 1}
    await publish(store, event(MSK), event(MSK), event(AUDIT), first=3)
    assert await Outbox(store).reached() == {(MSK, 0): 4, (AUDIT, 0): 4}


async def test_a_retry_long_overdue_is_published_again_and_one_due_later_or_settled_is_not(store: Store) -> None:
    late, waiting, settled = event(MSK), event(MSK), event(MSK)
    await publish(store, late, waiting, settled)
    late_retry, waiting_retry, settled_retry = event(RETRY), event(RETRY), event(RETRY)
    at = now()
    await settle(store, late, RETRYING, late_retry, due=at - timedelta(seconds=400))
    await settle(store, waiting, RETRYING, waiting_retry, due=at + timedelta(seconds=200))
    await settle(store, settled, DELIVERED, settled_retry, due=at - timedelta(seconds=400))  # tried, and taken
    await publish(store)  # the retry records
    woken: list[bool] = []
    overdue = OverdueRetries(store, DeliverySettings(overdue_retry_s=300), lambda: woken.append(True))

    assert await overdue.sweep(at + timedelta(seconds=1)) == 0, "published too recently to be taken for lost"
    assert await overdue.sweep(at + timedelta(seconds=301)) == 1
    after = await marks(store)
    assert after[late_retry.event_id] == (False, None), "the retry 400 s overdue goes out again"
    assert after[waiting_retry.event_id][0] and after[settled_retry.event_id][0]
    assert woken == [True]
    await publish(store)
    assert await overdue.sweep() == 0, "published again just now: not again for another 300 s"
