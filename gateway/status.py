"""The status spine: a receiver moves a referral's Task along; each change is stored with an event on
the status topic (`referrals.status`), which delivery carries back to the referrer in its own format.

    proposed Task (FHIR PUT/PATCH, HL7 RRI^I12, BaRS servicerequest-response, status-updates topic)
        → lifecycle rules (schemas/task-lifecycle.json) → store: new version + outbox event, one commit

A change that repeats the current state is answered with the current version and adds no event,
so a receiver's retry is harmless. The event's `routing_service` header names the referrer's service
in the directory, so delivery sends the change back in the referrer's format (none: topic only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.task import Task

from gateway.audit import spines
from gateway.audit.trail import AuditTrail
from gateway.bus import events
from gateway.canonical import task as rules
from gateway.canonical.referral import referral_id_for
from gateway.canonical.response import InboundResponse
from gateway.errors import DuplicateRequest, GatewayError, Issue, NotFound, PreconditionFailed, StaleWrite
from gateway.observability import metrics
from gateway.store import Store, StoredReferral
from gateway.store.tasks import StoredTask, TaskStore

log = logging.getLogger(__name__)
RESPONSE_CHANNEL = "fhir-messaging"


class StatusUpdates:
    def __init__(
        self,
        store: Store,
        schemas_dir: Path,
        on_commit: Callable[[], None],
        audit: AuditTrail | None = None,
        referrer_service: Callable[[str], str | None] | None = None,
        *,
        topic: str,
    ) -> None:
        self._store = store
        self._topic = topic  # settings.topics.status
        self._referrer_service = referrer_service  # the directory service a referrer's ODS code is reached by
        self.tasks = TaskStore(store)
        self._rules = rules.lifecycle(schemas_dir)
        self._on_commit = on_commit
        self._audit = audit

    async def change(
        self,
        task_id: str,
        proposed: Task,
        *,
        channel: str,
        sender: str,
        if_match: int | None = None,
        authorise: Callable[[StoredReferral], None] | None = None,
        message: InboundResponse | None = None,
    ) -> StoredTask:
        """Move a Task along. `authorise` sees the Task's referral first and raises if the caller may not;
        `message` is the sender's message that asks for it, kept with the change."""
        referral: StoredReferral | None = None
        try:
            current = await self.tasks.get(task_id)
            if current is None:
                raise NotFound(f"Task/{task_id} is not known here")
            referral = await self._store.get(current.referral_id)
            if authorise is not None and referral is not None:
                authorise(referral)
            if message is not None and await self._replayed(message):
                log.info("message %s from %s is a retry; answered again", message.message_id, message.sender)
                stored = current
            else:
                stored = await self._change(current, proposed, channel, sender, if_match, message)
        except GatewayError as error:
            await spines.task_action(self._audit, task_id, sender, referral, error)
            raise
        done = f"status {stored.status} ({channel})"
        await spines.task_action(self._audit, task_id, sender, referral, description=done)
        return stored

    async def move(
        self,
        task_id: str,
        status: str,
        *,
        reason: str | None = None,
        business_status: str | None = None,
        channel: str,
        sender: str,
        authorise: Callable[[StoredReferral], None] | None = None,
    ) -> StoredTask:
        """A change given as a status and its texts (HL7 v2 RRI^I12): the current Task with those set."""
        current = await self.tasks.get(task_id)
        proposed = _task(current) if current else Task(status=status, intent="order")
        proposed.status = status
        if reason:
            proposed.statusReason = CodeableConcept(text=reason)
        if business_status:
            proposed.businessStatus = CodeableConcept(text=business_status)
        return await self.change(task_id, proposed, channel=channel, sender=sender, authorise=authorise)

    async def answer(
        self, response: InboundResponse, *, sender: str, authorise: Callable[[StoredReferral], None] | None = None
    ) -> StoredTask:
        """A BaRS response from the receiver: the named referral's Task moved to its outcome, and (as
        every change) sent back to the referrer. `NotFound` when it names no referral known here."""
        referral = await self._named(response)
        current = await self.tasks.for_referral(referral.id)
        if current is None:
            raise NotFound(f"ServiceRequest/{referral.id} has no Task to move")
        proposed = _task(current)
        outcome = response.outcome
        proposed.status = outcome.status
        proposed.businessStatus = outcome.business_status or proposed.businessStatus
        proposed.statusReason = outcome.reason or proposed.statusReason
        log.info("response %s moves task %s to %s (%s)", response.message_id, current.id, outcome.status, outcome.how)
        return await self.change(
            current.id, proposed, channel=RESPONSE_CHANNEL, sender=sender, authorise=authorise, message=response
        )

    async def _replayed(self, response: InboundResponse) -> bool:
        """True for a retry of a response taken before (same sender, X-Request-Id and fingerprint);
        `DuplicateRequest` when that id came with another message."""
        earlier = await self._store.message_referral(response.sender, response.message_id)
        if earlier is None:
            return False
        steps = [h.detail for h in await self._store.history(earlier.id) if h.step == "status"]
        if response.digest and any(
            d.get("message_id") == response.message_id and d.get("digest") == response.digest for d in steps
        ):
            return True
        raise _duplicate(response.message_id)

    async def _named(self, response: InboundResponse) -> StoredReferral:
        candidates = [*response.referral_ids, *(referral_id_for(s, v) for s, v in response.identifiers)]
        for referral_id in dict.fromkeys(candidates):
            found = await self._store.get(referral_id)
            if found is not None:
                return found
        raise NotFound(
            "the response is about no referral known here",
            Issue(
                f"no referral is known by {', '.join(response.names)}", "MessageHeader.focus[0].reference", "not-found"
            ),
        )

    async def _change(
        self,
        current: StoredTask,
        proposed: Task,
        channel: str,
        sender: str,
        if_match: int | None,
        message: InboundResponse | None = None,
    ) -> StoredTask:
        if if_match is not None and if_match != current.version:
            raise PreconditionFailed(f"If-Match names version {if_match}; the current version is {current.version}")
        before = _task(current)
        after = rules.next_version(before, proposed, self._rules)
        if _same_state(before, after):
            return current
        return await self._save(current, after, channel, sender, message)

    async def referral_cancelled(self, referral_id: str) -> None:
        """The referrer ended the referral: withdrawn (revoked) cancels its Task, deleted as made in error
        (entered-in-error) marks the Task so too; each where the life cycle allows."""
        referral = await self._store.get(referral_id)
        current = await self.tasks.for_referral(referral_id)
        ending = _ENDINGS.get(referral.status) if referral is not None else None
        if current is None or ending is None or ending[0] not in self._rules.transitions.get(current.status, []):
            return
        proposed = _task(current)
        proposed.status, reason = ending
        proposed.statusReason = CodeableConcept(text=reason)
        await self.change(current.id, proposed, channel="gateway", sender="referrer-cancellation")

    async def _save(
        self, current: StoredTask, task: Task, channel: str, sender: str, message: InboundResponse | None = None
    ) -> StoredTask:
        referral = await self._store.get(current.referral_id)
        assert referral is not None  # a Task is created with its referral, in one commit
        event = events.new_event(
            topic=self._topic,
            key=referral.nhs_number,
            event_type=events.TASK_UPDATED,
            source=f"urn:referral-gateway:{channel}:{sender}",
            subject=f"Task/{task.id}",
            value=task.model_dump_json(),
            correlation_id=referral.correlation_id,
            extra={
                "referral": f"ServiceRequest/{referral.id}",
                "task_status": str(task.status),
                "referrer": referral.requester or "",
                **self._back_to(referral.requester),
            },
        )
        step = {
            "status": task.status,
            "reason": _text(task.statusReason),
            "business_status": _text(task.businessStatus),
            "channel": channel,
            "sender": sender,
            "task_version": current.version + 1,
            **({"message_id": message.message_id, "digest": message.digest} if message else {}),
        }
        key = (message.sender, message.message_id) if message else None
        try:
            stored = await self.tasks.save_version(
                current, task.model_dump_json(), str(task.status), event, [("status", step)], key
            )
        except StaleWrite as exc:
            if exc.unique_key:  # the same message id, committed by another request meanwhile
                raise _duplicate(message.message_id if message else "") from exc
            raise StaleWrite("the Task changed while this update was being made; read it and try again") from exc
        log.info("task %s is now %s", task.id, task.status)
        metrics.status_changed(str(task.status), channel)
        self._on_commit()
        return stored

    def _back_to(self, requester: str | None) -> dict[str, str]:
        """Delivery's address for the change: the referrer's service, if the directory knows one."""
        service = self._referrer_service(requester) if requester and self._referrer_service else None
        return {"routing_service": service} if service else {}


#: The referral's status when the referrer ends it, and the Task status and reason that follow.
_ENDINGS = {
    "revoked": ("cancelled", "Referral withdrawn by the referrer"),
    "entered-in-error": ("entered-in-error", "Referral entered in error: deleted by the referrer"),
}


def _duplicate(message_id: str) -> DuplicateRequest:
    return DuplicateRequest(
        f"request {message_id} has already been processed, with another body or correlation id",
        Issue("a message with this X-Request-Id was processed before", "X-Request-Id", "duplicate"),
    )


def _task(stored: StoredTask) -> Task:
    return Task.model_validate_json(stored.resource)


def _same_state(before: Task, after: Task) -> bool:
    return rules.receiver_state(before) == rules.receiver_state(after)


def _text(concept: object) -> str | None:
    if concept is None:
        return None
    text = getattr(concept, "text", None)
    codings = getattr(concept, "coding", None) or []
    return str(text or (codings[0].display or codings[0].code if codings else "")) or None
