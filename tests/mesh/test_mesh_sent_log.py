"""The MESH channel's record of what it sent, on a real SQLite store: a newer message for the same
event and recipient replaces one MESH could not deliver, tracking updates it, and the retention job
prunes it with the histories."""

from __future__ import annotations

from datetime import timedelta

from gateway.monitoring.retention import Pruner
from gateway.settings import RetentionSettings
from gateway.store import Store
from gateway.store.mesh_sent import MeshSentLog
from gateway.store.store import now


async def test_a_message_sent_again_replaces_the_undeliverable_one(store: Store) -> None:
    log = MeshSentLog(store)
    await log.sent("event-1", "NQ1IAMB1", "FIRST", "X26GW001", "BARS_REFERRAL")
    await log.tracked("event-1", "NQ1IAMB1", "undeliverable")
    assert [s.message_id for s in await log.awaiting()] == []
    await log.sent("event-1", "NQ1IAMB1", "SECOND", "X26GW001", "BARS_REFERRAL")
    found = await log.find("event-1", "NQ1IAMB1")
    assert found is not None and (found.message_id, found.status) == ("SECOND", "accepted")
    assert [s.message_id for s in await log.awaiting()] == ["SECOND"]
    assert await log.find("event-1", "NPH01MB1") is None


async def test_the_retention_job_prunes_what_was_sent_before_the_histories_it_keeps(store: Store) -> None:
    log = MeshSentLog(store)
    await log.sent("event-1", "NQ1IAMB1", "M1", "X26GW001", "BARS_REFERRAL")
    settings = RetentionSettings(history_days=30)
    pruner = Pruner(store, settings, "referrals.deadletter")
    assert (await pruner.prune(now() + timedelta(days=29))).mesh_sent == 0
    assert (await pruner.prune(now() + timedelta(days=31))).mesh_sent == 1
    assert await log.find("event-1", "NQ1IAMB1") is None
