"""The status spine: a receiver moves a referral's Task along; each change is stored with an event on
the status topic (`referrals.status`), which delivery carries back to the referrer in its own format.

    proposed Task (FHIR PUT/PATCH, HL7 RRI^I12, status-updates topic)
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
from gateway.errors import Conflict, GatewayError, NotFound, PreconditionFailed
from gateway.observability import metrics
from gateway.store import Store, StoredReferral
from gateway.store.tasks import StaleTask, StoredTask, TaskStore

log = logging.getLogger(__name__)


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
    ) -> StoredTask:
        """Move a Task along. `authorise` sees the Task's referral first and raises if the caller may not."""
        referral: StoredReferral | None = None
        try:
            current = await self.tasks.get(task_id)
            if current is None:
                raise NotFound(f"Task/{task_id} is not known here")
            referral = await self._store.get(current.referral_id)
            if authorise is not None and referral is not None:
                authorise(referral)
            stored = await self._change(current, proposed, channel, sender, if_match)
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
        proposed = current.task() if current else Task(status=status, intent="order")
        proposed.status = status
        if reason:
            proposed.statusReason = CodeableConcept(text=reason)
        if business_status:
            proposed.businessStatus = CodeableConcept(text=business_status)
        return await self.change(task_id, proposed, channel=channel, sender=sender, authorise=authorise)

    async def _change(
        self, current: StoredTask, proposed: Task, channel: str, sender: str, if_match: int | None
    ) -> StoredTask:
        if if_match is not None and if_match != current.version:
            raise PreconditionFailed(f"If-Match names version {if_match}; the current version is {current.version}")
        before = current.task()
        after = rules.next_version(before, proposed, self._rules)
        if _same_state(before, after):
            return current
        return await self._save(current, after, channel, sender)

    async def referral_cancelled(self, referral_id: str) -> None:
        """The referrer withdrew the referral: its Task is cancelled too, where the life cycle allows."""
        current = await self.tasks.for_referral(referral_id)
        if current is None or "cancelled" not in self._rules.transitions.get(current.status, []):
            return
        proposed = current.task()
        proposed.status = "cancelled"
        proposed.statusReason = CodeableConcept(text="Referral withdrawn by the referrer")
        await self.change(current.id, proposed, channel="gateway", sender="referrer-cancellation")

    async def _save(self, current: StoredTask, task: Task, channel: str, sender: str) -> StoredTask:
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
        }
        try:
            async with self._store.begin() as conn:
                stored = await self.tasks.save_version(conn, current, task, event, [("status", step)])
        except StaleTask as exc:
            raise Conflict("the Task changed while this update was being made; read it and try again") from exc
        log.info("task %s is now %s", task.id, task.status)
        metrics.status_changed(str(task.status), channel)
        self._on_commit()
        return stored

    def _back_to(self, requester: str | None) -> dict[str, str]:
        """Delivery's address for the change: the referrer's service, if the directory knows one."""
        service = self._referrer_service(requester) if requester and self._referrer_service else None
        return {"routing_service": service} if service else {}


def _same_state(before: Task, after: Task) -> bool:
    return rules.receiver_state(before) == rules.receiver_state(after)


def _text(concept: object) -> str | None:
    if concept is None:
        return None
    text = getattr(concept, "text", None)
    codings = getattr(concept, "coding", None) or []
    return str(text or (codings[0].display or codings[0].code if codings else "")) or None
