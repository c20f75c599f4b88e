"""One stale-write error: a referral's and a Task's optimistic writes both answer a change that
committed first with `StaleWrite` (409, retriable), on SQLite and PostgreSQL; nothing of the late
write is kept."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from gateway.bus.events import new_event
from gateway.errors import Conflict, StaleWrite
from gateway.store.rows import OutboxEvent
from gateway.store.store import Store
from gateway.store.tasks import TaskStore, task_rows
from tests.store.test_group_commit import new_referral


def event(referral_id: str, value: str) -> OutboxEvent:
    return new_event(
        topic="referrals.msk-pain",
        key="9434765919",
        event_type="t",
        source="s",
        subject=f"ServiceRequest/{referral_id}",
        value=value,
        correlation_id="c",
    )


def test_a_stale_write_is_a_retriable_conflict() -> None:
    error = StaleWrite("changed meanwhile")
    assert isinstance(error, Conflict)
    assert (error.http_status, error.issue_code, error.retriable, error.unique_key) == (409, "conflict", True, False)


async def test_a_referral_written_from_a_version_that_moved_on_is_a_stale_write(store: Store) -> None:
    first = (await store.accept(new_referral(uuid.uuid4().hex))).referral
    second = await store.update(first, "on-hold", event(first.id, '{"v": 2}'), [("updated", {})])
    assert second.version == 2

    with pytest.raises(StaleWrite) as raised:  # written from version 1, which is no longer current
        await store.update(first, "revoked", event(first.id, '{"v": 3}'), [("updated", {})])

    assert not raised.value.unique_key
    current = await store.get(first.id)
    assert current is not None and (current.version, current.status) == (2, "on-hold")
    assert [h.step for h in await store.history(first.id)] == ["received", "updated"]


async def test_a_message_id_taken_meanwhile_is_a_stale_write_on_a_unique_key(store: Store) -> None:
    referral = (await store.accept(new_referral(uuid.uuid4().hex))).referral
    key = ("GP^A81001", "MSG-1")
    updated = await store.update(referral, "on-hold", event(referral.id, "{}"), [], message_key=key)

    with pytest.raises(StaleWrite) as raised:
        await store.update(updated, "active", event(referral.id, "{}"), [], message_key=key)

    assert raised.value.unique_key
    assert (await store.get(referral.id)).version == 2  # type: ignore[union-attr]


async def test_a_task_written_from_a_version_that_moved_on_is_a_stale_write(store: Store) -> None:
    new = new_referral(uuid.uuid4().hex)
    referral_id = new.row["id"]
    task = {"resourceType": "Task", "id": f"task-{referral_id}", "status": "requested", "intent": "order"}
    await store.accept(dataclasses.replace(new, task_rows=task_rows(task, referral_id, "9434765919")))
    tasks = TaskStore(store)
    current = await tasks.get(task["id"])
    assert current is not None
    accepted = json.dumps({**task, "status": "accepted"})
    moved = await tasks.save_version(current, accepted, "accepted", event(referral_id, accepted), [("status", {})])
    assert moved.version == 2

    with pytest.raises(StaleWrite) as raised:
        await tasks.save_version(current, accepted, "rejected", event(referral_id, accepted), [("status", {})])

    assert not raised.value.unique_key
    assert (await tasks.get(task["id"])).status == "accepted"  # type: ignore[union-attr]
    assert await tasks.versions(task["id"]) == [current.resource, accepted]
