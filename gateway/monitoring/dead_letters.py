"""Dead letters, and what an engineer does with them once the cause is fixed: replay or discard.

A dead letter is the record delivery (a referral or a status update) committed to the outbox for the
dead-letter topic: the original event with `dlq_*` headers saying why it was given up
(gateway/delivery/dead_letter.py). The outbox row is kept until the dead letter is dealt with, so
the list survives a broker that forgot its log.

- Replay puts the original event back in the outbox for its original topic (for its own receiver, or
  for the receivers chosen), with a history step saying who replayed it. Delivery sees a copy
  published after a dead letter as a fresh series of attempts. Replay is idempotent: the replayed
  record's id is derived from (dead letter, receiver), so replaying twice queues it once.
- Discard records who discarded it and why, as a history step; nothing is sent.

Must not: send anything to a receiver or publish to Kafka itself (the relay and delivery do).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from gateway.delivery.dead_letter import replay as original_event
from gateway.errors import Conflict, Issue, MalformedInput, NotFound
from gateway.store import Store
from gateway.store import dead_letters as kept
from gateway.store.outbox import OutboxRow
from gateway.store.store import OutboxEvent

REPLAYED = "dead-letter-replayed"
DISCARDED = "dead-letter-discarded"
OPEN, REPLAYED_STATE, DISCARDED_STATE = "open", "replayed", "discarded"
STATES = (OPEN, REPLAYED_STATE, DISCARDED_STATE)
_REPLAY_NAMESPACE = uuid.UUID("3c0b8a57-2f1e-4d8e-8f7a-6a1d2c9e4b31")
LIST_LIMIT = 500


@dataclass(frozen=True)
class Action:
    at: datetime
    kind: str  # replayed or discarded
    by: str
    reason: str | None = None
    receiver: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    id: str  # the dead-letter record's own event id
    referral_id: str
    at: datetime
    receiver: str | None
    reason: str
    details: str
    attempts: int
    event_id: str  # the original event's id (ce_id)
    event_type: str
    original: str  # topic/partition/offset the original event was read from
    key: str
    headers: dict[str, str]
    value: str
    actions: tuple[Action, ...] = ()
    delivery_status: str | None = None  # what the delivery ledger says now for (event, receiver)

    @property
    def state(self) -> str:
        kinds = {a.kind for a in self.actions}
        return DISCARDED_STATE if DISCARDED_STATE in kinds else REPLAYED_STATE if kinds else OPEN


@dataclass(frozen=True)
class Replayed:
    dead_letter: str
    receiver: str | None
    replay_event: str
    queued: bool  # False: this replay was queued before (nothing new was written)


class DeadLetters:
    def __init__(
        self,
        store: Store,
        topic: str,
        wake_relay: Callable[[], None] | None = None,
        known_receiver: Callable[[str], bool] | None = None,
    ) -> None:
        self._store = store
        self.topic = topic
        self._wake = wake_relay
        self._known = known_receiver

    async def search(
        self,
        receiver: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = LIST_LIMIT,
    ) -> list[DeadLetter]:
        """Newest first; `state` is open, replayed or discarded (None: all)."""
        rows = await kept.on_topic(self._store, self.topic, since, until, receiver)  # coarse; the exact one follows
        letters = [_dead_letter(r) for r in rows]
        letters = [d for d in letters if receiver is None or d.receiver == receiver]
        found = await self._with_state(letters)
        return [d for d in found if state is None or d.state == state][:limit]

    async def open_count(self) -> int:
        """How many dead letters wait for an engineer (neither replayed nor discarded): uncapped."""
        return len(await self.search(state=OPEN, limit=sys.maxsize))

    async def get(self, dead_letter_id: str) -> DeadLetter:
        row = await kept.one_on_topic(self._store, self.topic, dead_letter_id)
        if row is None:
            raise NotFound(f"no dead letter {dead_letter_id} is kept here")
        (found,) = await self._with_state([_dead_letter(row)])
        return found

    async def replay(self, ids: Iterable[str], by: str, receivers: list[str] | None = None) -> list[Replayed]:
        """Replay each dead letter to its own receiver, or to `receivers` when given."""
        for receiver in receivers or []:
            self._check_receiver(receiver)
        letters = [await self.get(i) for i in ids]
        for letter in letters:
            if letter.state == DISCARDED_STATE:
                raise Conflict(f"dead letter {letter.id} was discarded; it cannot be replayed")
        targets: list[str | None] = list(receivers or [])
        done = [await self._replay_one(letter, r, by) for letter in letters for r in (targets or [letter.receiver])]
        if any(r.queued for r in done) and self._wake is not None:
            self._wake()
        return done

    async def replay_window(self, receiver: str, since: datetime, until: datetime, by: str) -> list[Replayed]:
        """Replay every open dead letter for `receiver` given up between `since` and `until`."""
        if since >= until:
            raise MalformedInput("the window must end after it starts", Issue(f"{since} to {until}", "since", "value"))
        letters = await self.search(receiver=receiver, state=OPEN, since=since, until=until, limit=LIST_LIMIT)
        return await self.replay([d.id for d in letters], by) if letters else []

    async def discard(self, dead_letter_id: str, reason: str, by: str) -> DeadLetter:
        if not reason.strip():
            raise MalformedInput("say why it is discarded", Issue("the reason is empty", "reason", "required"))
        letter = await self.get(dead_letter_id)
        if letter.state == DISCARDED_STATE:
            return letter
        if letter.state == REPLAYED_STATE:
            raise Conflict(f"dead letter {letter.id} was replayed; there is nothing left to discard")
        step = {"dead_letter": letter.id, "reason": reason.strip(), "by": by, "receiver": letter.receiver}
        await self._store.add_step(letter.referral_id, DISCARDED, step)
        return await self.get(dead_letter_id)

    async def _replay_one(self, letter: DeadLetter, receiver: str | None, by: str) -> Replayed:
        topic, headers = original_event(letter.headers)
        if receiver:
            headers["routing_service"] = receiver
        replay_id = str(uuid.uuid5(_REPLAY_NAMESPACE, f"{letter.id}|{receiver or ''}"))
        record = OutboxEvent(replay_id, topic, letter.key, {**headers, "replayed_from": letter.id}, letter.value)
        step = {"dead_letter": letter.id, "receiver": receiver, "topic": topic, "replay_event": replay_id, "by": by}
        queued = await kept.queue_replay(self._store, record, letter.referral_id, (REPLAYED, step))
        return Replayed(letter.id, receiver, replay_id, queued=queued)

    def _check_receiver(self, receiver: str) -> None:
        if self._known is not None and not self._known(receiver):
            raise NotFound(f"no receiver '{receiver}' in the service directory")

    async def _with_state(self, letters: list[DeadLetter]) -> list[DeadLetter]:
        if not letters:
            return []
        actions = await self._actions({d.referral_id for d in letters})
        statuses = await self._delivery_statuses(letters)
        return [
            replace(d, actions=tuple(actions.get(d.id, ())), delivery_status=statuses.get((d.event_id, d.receiver)))
            for d in letters
        ]

    async def _actions(self, referral_ids: set[str]) -> dict[str, list[Action]]:
        found: dict[str, list[Action]] = {}
        for row in await kept.steps_of(self._store, referral_ids, (REPLAYED, DISCARDED)):
            detail = row.detail
            kind = REPLAYED_STATE if row.step == REPLAYED else DISCARDED_STATE
            action = Action(row.at, kind, detail.get("by", ""), detail.get("reason"), detail.get("receiver"))
            found.setdefault(detail.get("dead_letter", ""), []).append(action)
        return found

    async def _delivery_statuses(self, letters: list[DeadLetter]) -> dict[tuple[str, str | None], str]:
        keys = [(d.event_id, d.receiver) for d in letters if d.receiver is not None]
        statuses = await kept.delivery_statuses(self._store, keys)
        return {(event_id, receiver): status for (event_id, receiver), status in statuses.items()}


def _dead_letter(row: OutboxRow) -> DeadLetter:
    h = row.headers
    original = "/".join(h.get(k, "?") for k in ("dlq_original_topic", "dlq_original_partition", "dlq_original_offset"))
    return DeadLetter(
        id=row.event_id,
        referral_id=row.referral_id,
        at=row.created_at,
        receiver=h.get("dlq_receiver") or None,
        reason=h.get("dlq_reason", ""),
        details=h.get("dlq_details", ""),
        attempts=int(h.get("dlq_attempts", "0") or 0),
        event_id=h.get("ce_id", ""),
        event_type=h.get("ce_type", ""),
        original=original,
        key=row.key,
        headers=h,
        value=row.value,
    )
