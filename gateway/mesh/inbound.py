"""What one MESH message means to the gateway: the MESH channel's single call into the intake and
the status spines, the same calls the FHIR `$process-message` and MLLP surfaces make.

    REPORT (MESH's own non-delivery report)          → nothing to take (tracking decides delivery)
    workflow W (a referral workflow of this mailbox) → map → seen before? → intake.accept / update
                                                       (HL7 v2: the AA goes back on W_ACK, as over MLLP)
    workflow W_ACK (a receiver's business answer)    → map → status.move (the Task's owner only); a
                                                       refusal of what the gateway sent rejects the Task
    refused (a SenderError)                          → the answer to send back on W_ACK, with every issue
                                                       (an answer on W_ACK itself is never answered)

`take` returns only when what the message asked for is committed (or found already committed), so
the poller may acknowledge it to MESH then. A failure on the gateway's side (store down) is raised:
the message stays in the inbox and is taken again at the next poll, never answered as refused.
Must not: talk to MESH (the poller does) or parse bodies itself (adapters/inbound/mesh does).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from fhir.resources.R4B.codeableconcept import CodeableConcept

from adapters.hl7v2 import header, rri_i12
from adapters.hl7v2.header import Header
from adapters.hl7v2.parser import Message
from adapters.hl7v2.tables import Hl7Tables
from adapters.inbound.mesh import messages as adapter
from adapters.inbound.mesh.messages import Format
from gateway.canonical.referral import InboundReferral, referral_id_for
from gateway.canonical.task import task_id_for
from gateway.errors import Forbidden, GatewayError, NotFound, UnsupportedInput
from gateway.inbound_log.arrival import Arrival
from gateway.inbound_log.log import InboundLog
from gateway.intake import Acceptance
from gateway.mesh.client import Received
from gateway.settings import Hl7SenderOrganisations, MeshMailbox, MeshWorkflow
from gateway.status import StatusUpdates
from gateway.store import Store, StoredReferral
from gateway.store.mesh_sent import MeshSentLog

log = logging.getLogger(__name__)
Outcome = Literal["accepted", "duplicate", "status", "refused", "report"]


class Intake(Protocol):
    async def accept(self, inbound: InboundReferral) -> Acceptance: ...
    async def update(
        self,
        inbound: InboundReferral,
        referral_id: str | None = None,
        if_match: int | None = None,
        authorise: Callable[[StoredReferral], None] | None = None,
    ) -> Acceptance: ...


@dataclass(frozen=True)
class Taken:
    outcome: Outcome
    referral_id: str | None = None
    answer: bytes | None = None  # what goes back to the sender: a refusal, or an HL7 v2 AA
    answer_workflow: str | None = None
    answer_type: str | None = None
    error: str | None = None
    failure: GatewayError | None = field(default=None, compare=False)  # a refusal's error, for the inbound log


class MeshInbound:
    def __init__(
        self,
        intake: Intake,
        status: StatusUpdates,
        store: Store,
        hl7: Hl7Tables,
        owners: Callable[[str], Awaitable[set[str]]],
        sent: MeshSentLog,
        organisations: Sequence[Hl7SenderOrganisations] = (),
        inbound_log: InboundLog | None = None,
    ) -> None:
        self._intake = intake
        self._status = status
        self._store = store
        self._hl7 = hl7
        self._owners = owners  # the ODS codes a MESH mailbox speaks for (gateway/mesh/owners.py)
        self._sent = sent  # what the channel sent: a receiver's refusal names one of those events
        self._organisations = {o.key: o for o in organisations}  # PRD-less REF^I12 senders, as over MLLP
        self._inbound_log = inbound_log  # every message and its outcome, as for the other channels

    async def take(self, mailbox: MeshMailbox, received: Received) -> Taken:
        """What the message meant, recorded in the inbound log (its row, its outcome) when one is kept."""
        if self._inbound_log is None or received.message_type == "REPORT":
            return await self._take(mailbox, received)
        arrival = Arrival(adapter.CHANNEL, received.body, sender=received.sender)
        arrival.control_id, arrival.destination = received.message_id, f"{mailbox.id} {received.workflow_id}"
        async with self._inbound_log.receiving(arrival):
            taken = await self._take(mailbox, received)
            if taken.outcome == "refused" and taken.failure is not None:
                arrival.refuse(taken.failure)
            elif taken.referral_id:
                arrival.referral_id = taken.referral_id
        return taken

    async def _take(self, mailbox: MeshMailbox, received: Received) -> Taken:
        if received.message_type == "REPORT":
            log.info("MESH report %s for message %s", received.message_id, received.linked_message_id)
            return Taken("report")
        workflow, is_answer = _workflow(mailbox, received.workflow_id)
        fmt: Format = workflow.format if workflow else "bars-json"
        answer_on = received.workflow_id if is_answer else f"{received.workflow_id}_ACK"
        try:
            if workflow is None:
                raise UnsupportedInput(f"mailbox {mailbox.id} takes no workflow '{received.workflow_id}'")
            if fmt == "hl7v2":
                return await self._hl7v2(received, is_answer, answer_on)
            return await self._bars(received, fmt, is_answer)
        except GatewayError as error:
            if error.retriable:
                raise
            return self._refused(received, error, fmt, answer_on, None)

    async def _bars(self, received: Received, fmt: Format, is_answer: bool) -> Taken:
        if is_answer:
            return await self._bars_answer(received, adapter.bars_answer(received.body, fmt))
        key = adapter.message_key(received.sender, received.message_id)
        return await self._referral(adapter.bars_referral(received.body, fmt, key, _correlation(received)), received)

    async def _bars_answer(self, received: Received, answer: adapter.BarsAnswer) -> Taken:
        """The receiver's Task moves ours (its status and texts; ours keeps what may not change);
        a refusal of what the gateway sent rejects the referral's Task with the receiver's reasons."""
        if answer.task is not None:
            task = answer.task
            referral_id = adapter.task_referral(task)
            status, reason, business = str(task.status), _text(task.statusReason), _text(task.businessStatus)
        else:
            referral_id = await self._sent.referral_of(answer.answering or "")
            if referral_id is None:
                raise NotFound(f"the refused message {answer.answering} is not one this gateway sent")
            status, reason, business = "rejected", f"refused by {received.sender}: {answer.refusal}", None
        await self._status.move(
            task_id_for(referral_id or ""),
            status,
            reason=reason,
            business_status=business,
            channel=adapter.CHANNEL,
            sender=received.sender,
            authorise=await self._owner_only(received.sender),
        )
        return Taken("status", referral_id)

    async def _hl7v2(self, received: Received, is_answer: bool, answer_on: str) -> Taken:
        head: Header | None = None
        try:
            message = adapter.hl7_message(received.body)
            head = header.read(message)
            kind = header.check(head, self._hl7.profile)
            if is_answer and kind.structure == rri_i12.STRUCTURE:
                return await self._hl7_status(received, message, head)
            if is_answer or kind.structure != "REF_I12":
                raise UnsupportedInput(f"{kind.structure} is not taken on workflow {received.workflow_id}")
            key = adapter.message_key(received.sender, received.message_id)
            organisations = self._organisations.get((head.sending_facility.upper(), head.receiving_facility.upper()))
            inbound = adapter.hl7_referral(message, head, kind, self._hl7, key, _correlation(received), organisations)
            taken = await self._referral(inbound, received)
            answer = adapter.hl7_accepted(head, self._hl7)  # AA: committed, as over MLLP
            return replace(taken, answer=answer, answer_workflow=answer_on, answer_type=adapter.HL7_V2)
        except GatewayError as error:
            if error.retriable:
                raise
            return self._refused(received, error, "hl7v2", answer_on, head)

    async def _hl7_status(self, received: Received, message: Message, head: Header) -> Taken:
        report = rri_i12.to_status(message, head, self._hl7)
        referral_id = report.referral_id or referral_id_for(*(report.identifier or ("", "")))
        await self._status.move(
            task_id_for(referral_id),
            report.status,
            reason=report.reason,
            business_status=report.business_status,
            channel=adapter.CHANNEL,
            sender=received.sender,
            authorise=await self._owner_only(received.sender),
        )
        return Taken("status", referral_id)

    async def _referral(self, inbound: InboundReferral, received: Received) -> Taken:
        """The one call into the intake for a MESH message (a message seen before is not taken twice)."""
        assert inbound.message_id is not None
        earlier = await self._store.message_referral(inbound.sender, inbound.message_id)
        if earlier is not None:
            return Taken("duplicate", earlier.id)
        if inbound.reason == "new":
            acceptance = await self._intake.accept(inbound)
        else:  # an update or a cancellation: only from a mailbox of the referrer
            authorise = await self._referrer_only(received.sender)
            acceptance = await self._intake.update(inbound, authorise=authorise)
        taken = acceptance.created or inbound.reason != "new"
        return Taken("accepted" if taken else "duplicate", acceptance.referral_id)

    async def _owner_only(self, mailbox: str) -> Callable[[StoredReferral], None]:
        owners = await self._owners(mailbox)

        def check(referral: StoredReferral) -> None:
            if referral.performer not in owners:
                raise Forbidden(f"MESH mailbox {mailbox} does not belong to the service that owns this referral's Task")

        return check

    async def _referrer_only(self, mailbox: str) -> Callable[[StoredReferral], None]:
        owners = await self._owners(mailbox)

        def check(referral: StoredReferral) -> None:
            if referral.requester not in owners:
                raise Forbidden(f"MESH mailbox {mailbox} does not belong to the organisation that made this referral")

        return check

    def _refused(
        self, received: Received, error: GatewayError, fmt: Format, answer_on: str, head: Header | None
    ) -> Taken:
        if received.workflow_id.endswith("_ACK"):
            # An answer is never answered: two systems would otherwise answer each other's refusals
            # for ever. It is refused, kept in the log and on the dashboard, and let go.
            log.warning("MESH answer %s from %s not taken: %s", received.message_id, received.sender, error.message)
            return Taken("refused", error=error.message, failure=error)
        log.info("MESH message %s from %s refused: %s", received.message_id, received.sender, error.message)
        if fmt == "hl7v2":
            body = adapter.hl7_refusal(error, head, self._hl7)
        else:
            body = adapter.bars_refusal(fmt, received.message_id, error)
        return Taken("refused", None, body, answer_on, adapter.MEDIA_TYPES[fmt], error.message, error)


def _workflow(mailbox: MeshMailbox, workflow_id: str) -> tuple[MeshWorkflow | None, bool]:
    """The mailbox's workflow a message came on, and whether it is that workflow's answer (`_ACK`)."""
    for workflow in mailbox.workflows:
        if workflow.id == workflow_id:
            return workflow, False
        if workflow.ack == workflow_id:
            return workflow, True
    return None, False


def _correlation(received: Received) -> str:
    return received.local_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"mesh:{received.message_id}"))


def _text(concept: CodeableConcept | None) -> str | None:
    if concept is None:
        return None
    codings = concept.coding or []
    return concept.text or (codings[0].display or codings[0].code if codings else None)
