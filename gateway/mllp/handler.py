"""One HL7 v2 message in, its acknowledgements out: the MLLP surface of the intake spine.

    text -> parse -> MSH read and checked, once -> mapping by structure (REF_I12) -> intake.accept -> ACK(s)
                                                                      (RRI_I12) -> status.move   -> ACK(s)

The header read here is passed down to the mapping, which does not read it again. A REF^I12 from a
sender configured in `MLLP_SENDER_ORGANISATIONS` (matched on MSH-4 and MSH-6) takes the organisations
of any PRD it lacks from there.

An AA (or CA) is written only after `accept` returned, so it always means the referral and its
event are committed. A resend (same MSH-10 from the same sender, or the same RF1-6) is answered AA
again and adds nothing. An RRI^I12 moves the referral's Task, if MSH-4 is the Task's owner; a repeat
of the current status is answered AA and adds nothing. A `GatewayError` becomes AE / AR with ERR in
original mode, CR (refused) / CE (the gateway failed) in enhanced mode, never CA; anything
unexpected is answered as the gateway's failure (table 0357 code 207) with an incident id in the
log: no message can stop the listener. Each message is logged with its outcome before its ACKs are
returned (`InboundLog.receiving`: an accepted referral's row is committed with it; a refusal is noted
where its ACK is made).
Must not: frame, read or write sockets (the listener does), or map fields (the adapters do).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from adapters.hl7v2 import ack, header, parser, ref_i12, rri_i12
from adapters.hl7v2.header import Header
from adapters.hl7v2.parser import Message
from adapters.hl7v2.tables import Hl7Tables, MessageType
from gateway.audit import context as audit_context
from gateway.canonical.referral import InboundReferral, referral_id_for
from gateway.canonical.task import task_id_for
from gateway.errors import Forbidden, GatewayError, MalformedInput, SenderError, UnsupportedInput
from gateway.inbound_log.arrival import Arrival, wire_bytes
from gateway.inbound_log.log import InboundLog
from gateway.intake import Acceptance
from gateway.settings import Hl7SenderOrganisations
from gateway.store import StoredReferral
from gateway.store.tasks import StoredTask

log = logging.getLogger(__name__)

#: A message's text in, the acknowledgements to send back (in order; none when the sender wants none).
Handler = Callable[[str], Awaitable[list[str]]]
Mapping = Callable[[Message, Header, MessageType, Hl7Tables, Hl7SenderOrganisations | None], InboundReferral]
SenderCheck = Callable[[Header], Awaitable[None]]

#: One mapping per HL7 message structure (profile.json names the structure of each MSH-9).
MAPPINGS: dict[str, Mapping] = {ref_i12.STRUCTURE: ref_i12.to_referral}


class Intake(Protocol):
    async def accept(self, inbound: InboundReferral) -> Acceptance: ...


class Status(Protocol):
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
    ) -> StoredTask: ...


CHANNEL = "hl7v2-mllp"


class ReferralHandler:
    def __init__(
        self,
        intake: Intake,
        hl7: Hl7Tables,
        check_sender: SenderCheck | None = None,
        status: Status | None = None,
        organisations: Sequence[Hl7SenderOrganisations] = (),
        inbound: InboundLog | None = None,
    ) -> None:
        self._intake = intake
        self._status = status  # takes RRI^I12 (status back from a receiver) when given
        self._hl7 = hl7
        self._check_sender = check_sender  # the allowed senders (MSH-4 and address): raises Forbidden
        self._organisations = {entry.key: entry for entry in organisations}  # by (MSH-4.1, MSH-6.1)
        self._inbound = inbound or InboundLog(None)

    async def __call__(self, text: str, arrival: Arrival | None = None) -> list[str]:
        """The ACKs for one message; `arrival` is given when the message is a resubmission."""
        arrival = arrival or Arrival(CHANNEL, wire_bytes(text), source_address=audit_context.current_address())
        async with self._inbound.receiving(arrival):
            return await self._answer(text, arrival)

    async def _answer(self, text: str, arrival: Arrival) -> list[str]:
        try:
            message = parser.parse(text)
        except MalformedInput as exc:
            log.warning("HL7 v2 input refused: %s", exc.message)
            arrival.refuse(exc, "unreadable")
            return [ack.unreadable(exc, self._hl7)]
        head = header.read(message)
        arrival.sender, arrival.control_id = head.sender, head.control_id
        arrival.destination = f"{head.receiving_application}^{head.receiving_facility}"
        try:
            await self._take(message, head, arrival)
        except GatewayError as exc:
            self._log_refusal(head, exc)
            arrival.refuse(exc)
            return ack.failed(head, exc, self._hl7)
        except Exception:
            incident = uuid.uuid4()
            log.exception("HL7 %s from %s failed unexpectedly, incident %s", head.control_id, head.sender, incident)
            error = GatewayError(f"internal error; incident {incident}")
            arrival.refuse(error)
            return ack.failed(head, error, self._hl7)
        return ack.accepted(head, self._hl7)

    async def _take(self, message: Message, head: Header, arrival: Arrival) -> None:
        kind = header.check(head, self._hl7.profile)
        if self._check_sender is not None:
            await self._check_sender(head)
        if kind.structure == rri_i12.STRUCTURE and self._status is not None:
            arrival.referral_id = await self._move_task(message, head)
            return
        mapping = MAPPINGS.get(kind.structure)
        if mapping is None:
            raise UnsupportedInput(f"no mapping for {kind.structure}")
        organisations = self._organisations.get((head.sending_facility.upper(), head.receiving_facility.upper()))
        acceptance = await self._intake.accept(mapping(message, head, kind, self._hl7, organisations))
        if not acceptance.created:
            log.info("HL7 %s from %s is a resend of referral %s", head.control_id, head.sender, acceptance.referral_id)

    async def _move_task(self, message: Message, head: Header) -> str:
        assert self._status is not None
        report = rri_i12.to_status(message, head, self._hl7)
        referral_id = report.referral_id or referral_id_for(*(report.identifier or ("", "")))

        def owner_only(referral: StoredReferral) -> None:
            if referral.performer != head.sending_facility:
                raise Forbidden(f"MSH-4 {head.sending_facility} does not own this referral's Task")

        await self._status.move(
            task_id_for(referral_id),
            report.status,
            reason=report.reason,
            business_status=report.business_status,
            channel=CHANNEL,
            sender=head.sender,
            authorise=owner_only,
        )
        return referral_id

    @staticmethod
    def _log_refusal(head: Header, exc: GatewayError) -> None:
        level = logging.INFO if isinstance(exc, SenderError) else logging.WARNING
        log.log(level, "HL7 %s from %s answered %s: %s", head.control_id, head.sender, exc.ack_code, exc.message)
