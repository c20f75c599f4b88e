"""The message header (MSH): who sent it, what it is, and how it wants to be acknowledged.

`read` never fails, so any message that has an MSH can be answered. `check` decides whether the
gateway takes the message (profile.json: message types, versions, processing ids) and says which
MSH field is wrong when it does not. Must not: read segments other than MSH.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.hl7v2.parser import Encoding, Message
from adapters.hl7v2.tables import MessageType, Profile
from gateway.errors import Issue, MalformedInput, UnsupportedInput

#: MSH-15 / MSH-16 (HL7 table 0155): when an acknowledgement of that kind is wanted.
_WANTED = {"AL": {True, False}, "SU": {True}, "ER": {False}, "NE": set()}


@dataclass(frozen=True)
class Header:
    encoding: Encoding
    sending_application: str  # MSH-3.1
    sending_facility: str  # MSH-4.1
    receiving_application: str  # MSH-5.1
    receiving_facility: str  # MSH-6.1
    time: str  # MSH-7
    message_code: str  # MSH-9.1
    trigger_event: str  # MSH-9.2
    structure: str  # MSH-9.3
    control_id: str  # MSH-10
    processing_id: str  # MSH-11.1
    version: str  # MSH-12.1
    accept_ack_type: str  # MSH-15
    application_ack_type: str  # MSH-16

    @property
    def sender(self) -> str:
        """MSH-3^MSH-4: the sender as the gateway names it (intake de-duplicates per sender)."""
        return f"{self.sending_application}^{self.sending_facility}"

    @property
    def message_type(self) -> str:
        return f"{self.message_code}^{self.trigger_event}"

    @property
    def enhanced(self) -> bool:
        """Enhanced acknowledgement mode: the sender filled MSH-15 or MSH-16."""
        return bool(self.accept_ack_type or self.application_ack_type)

    def wants_commit_ack(self, success: bool) -> bool:
        return success in _WANTED.get(self.accept_ack_type or "AL", {True, False})

    def wants_application_ack(self, success: bool) -> bool:
        return success in _WANTED.get(self.application_ack_type or "AL", {True, False})


def read(message: Message) -> Header:
    msh = message.msh
    return Header(
        encoding=message.encoding,
        sending_application=msh.text(3),
        sending_facility=msh.text(4),
        receiving_application=msh.text(5),
        receiving_facility=msh.text(6),
        time=msh.text(7),
        message_code=msh.text(9, 1),
        trigger_event=msh.text(9, 2),
        structure=msh.text(9, 3),
        control_id=msh.text(10),
        processing_id=msh.text(11),
        version=msh.text(12),
        accept_ack_type=msh.text(15).upper(),
        application_ack_type=msh.text(16).upper(),
    )


def check(header: Header, profile: Profile) -> MessageType:
    """The message type the gateway takes this message as; raises naming the MSH field it refuses."""
    if not header.control_id:
        raise MalformedInput("MSH-10 (message control id) is empty", Issue("MSH-10 is required", "MSH-10", "required"))
    kind = profile.message_types.get(header.message_type)
    if kind is None:
        known = {t.split("^")[0] for t in profile.message_types}
        where = "MSH-9.2" if header.message_code in known else "MSH-9"
        raise UnsupportedInput(
            f"message type {header.message_type} is not taken here",
            Issue(f"taken: {', '.join(profile.message_types)}", where, "not-supported"),
        )
    _one_of(header.version, profile.versions, "MSH-12", "version")
    _one_of(header.processing_id, profile.processing_ids, "MSH-11", "processing id")
    return kind


def _one_of(value: str, allowed: list[str], where: str, what: str) -> None:
    if value not in allowed:
        raise UnsupportedInput(
            f"{what} '{value}' is not taken here", Issue(f"taken: {', '.join(allowed)}", where, "not-supported")
        )
