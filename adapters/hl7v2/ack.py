"""HL7 v2 acknowledgements: what the gateway answers to each message, in the sender's version and
encoding characters.

    original mode (MSH-15 and MSH-16 empty)   one ACK: AA accepted, AE / AR with ERR
    enhanced mode (MSH-15 / MSH-16 set)       taken: a commit ACK (CA: safely received, the sender may
                                              stop resending), then the application ACK (AA), each only
                                              when MSH-15 / MSH-16 (table 0155: AL, SU, ER, NE) asks
                                              not taken: one commit ACK with ERR, whatever they ask:
                                              CR refused (the sender must mend it), CE the gateway
                                              failed (the store did not commit: send again)

A message the gateway did not take is never answered CA, and never left unanswered in enhanced
mode: a sender that asked for no application ACK (MSH-16 NE, the usual PAS setting) would otherwise
believe a refused referral taken. A `GatewayError` says which: a `SenderError` is refused (its
`ack_code` AE or AR in original mode), anything else is the gateway's failure.

ERR names where and why, one per issue: v2.5 on, ERR-2 (location SEG^sequence^field^repetition^
component), ERR-3 (table 0357 code), ERR-4 (severity), ERR-8 (user message); v2.3.1 and v2.4, ERR-1
(SEG^sequence^field^code&text&HL70357, repeated). Issues at FHIR paths are reported at the HL7
field the element came from (profile.json fhir_locations).

These are written with the project's ER7 writer, not hl7apy: building one ACK with hl7apy costs
about 3 ms, more than the whole ingest budget per message; hl7apy checks these ACKs in the tests.
The MSH of an ACK is written once per sender (MSH-3/4 of the message, answered in MSH-5/6) and kind of
answer (trigger, processing id, version, encoding characters) and kept as a template
(`MshTemplate`); each ACK fills in only MSH-7, MSH-10 and its MSA. MSH-10 is this process's prefix
(random, new after a fork) and a counter, not a uuid4 per reply.
Must not: decide whether a message is accepted (the handler does, from the intake's answer).
"""

from __future__ import annotations

import itertools
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters.hl7v2 import writer
from adapters.hl7v2.header import Header
from adapters.hl7v2.parser import STANDARD, Encoding
from adapters.hl7v2.tables import Hl7Tables
from adapters.hl7v2.writer import Component, Value
from gateway.errors import GatewayError, Issue, SenderError

_LOCATION = re.compile(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+)(?:\[(\d+)\])?(?:\.(\d+))?)?$")
_SEVERITY = {"fatal": "E", "error": "E", "warning": "W", "information": "I"}
_ERR_1_VERSIONS = {"2.1", "2.2", "2.3", "2.3.1", "2.4"}
_MSA_3_MAX = 80
DEFAULT_VERSION = "2.5"


@dataclass(frozen=True)
class Location:
    segment: str
    sequence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> Location | None:
        """`PID-3`, `PRD[2]-7`, `MSH-9.2`, `OBX[1]-5[2]` or a bare segment name; None otherwise."""
        match = _LOCATION.fullmatch(text or "")
        if match is None:
            return None
        seg, seq, fld, rep, comp = match.groups()
        as_int = [int(v) if v else None for v in (fld, rep, comp)]
        return cls(seg, int(seq or 1), *as_int)


def accepted(head: Header, hl7: Hl7Tables) -> list[str]:
    """The answer to a message the intake has committed (or recognised as already committed)."""
    if not head.enhanced:
        return [_ack(head, "AA", "", (), hl7)]
    answers = [_ack(head, "CA", "", (), hl7)] if head.wants_commit_ack(True) else []
    if head.wants_application_ack(True):
        answers.append(_ack(head, "AA", "", (), hl7))
    return answers


def failed(head: Header, error: GatewayError, hl7: Hl7Tables) -> list[str]:
    """The answer to a message the gateway did not take, with an ERR for each issue: never a CA, and in
    enhanced mode sent whatever MSH-15 and MSH-16 ask (see the module's docstring)."""
    text = error.message[:_MSA_3_MAX]
    if not head.enhanced:
        return [_ack(head, error.ack_code, text, error.issues, hl7)]
    commit = "CR" if isinstance(error, SenderError) else "CE"
    return [_ack(head, commit, text, error.issues, hl7)]


def unreadable(error: GatewayError, hl7: Hl7Tables) -> str:
    """An AR for text that is not an HL7 message at all: there is no MSH-10 to answer."""
    head = Header(STANDARD, "", "", "", "", "", "", "", "", "", "P", DEFAULT_VERSION, "", "")
    return _ack(head, "AR", error.message[:_MSA_3_MAX], error.issues, hl7)


def _ack(head: Header, code: str, text: str, issues: tuple[Issue, ...], hl7: Hl7Tables) -> str:
    enc = head.encoding
    template = MshTemplate.of(head, hl7)
    segments = [
        template.fill(timestamp(), control_id()),
        writer.segment("MSA", [code, head.control_id, text or None], enc),
    ]
    segments += _err_segments(issues if code not in ("AA", "CA") else (), template.version, head, hl7)
    return writer.message(segments)


@dataclass(frozen=True)
class MshTemplate:
    """An ACK's MSH for one sender and kind of answer, written once: the text before MSH-7, between
    MSH-7 and MSH-10, and after MSH-10."""

    before_time: str
    before_control_id: str
    after_control_id: str
    version: str

    @classmethod
    def of(cls, head: Header, hl7: Hl7Tables) -> MshTemplate:
        profile = hl7.profile
        key = (
            profile.sending_application,
            profile.sending_facility,
            head.sending_application,
            head.sending_facility,
            head.trigger_event,
            head.processing_id,
            head.version,
            head.encoding,
        )
        template = _TEMPLATES.get(key)
        if template is None:
            if len(_TEMPLATES) >= _MAX_TEMPLATES:  # senders that vary MSH-3/4 per message: start again
                _TEMPLATES.clear()
            template = _TEMPLATES[key] = cls.write(head, hl7)
        return template

    @classmethod
    def write(cls, head: Header, hl7: Hl7Tables) -> MshTemplate:
        enc, profile = head.encoding, hl7.profile
        version = head.version or DEFAULT_VERSION
        msh: list[Value] = [
            profile.sending_application,
            profile.sending_facility,
            head.sending_application,
            head.sending_facility,
            "MSH-7",  # placeholders, never empty: the writer drops only trailing empty fields
            None,
            ("ACK", head.trigger_event or None, "ACK"),
            "MSH-10",
            head.processing_id or "P",
            version,
        ]
        fields = writer.msh(msh, enc).split(enc.field)  # an escaped separator is \F\, so this splits fields only
        bar = enc.field
        return cls(bar.join(fields[:6]) + bar, bar + bar.join(fields[7:9]) + bar, bar + bar.join(fields[10:]), version)

    def fill(self, time_: str, control_id_: str) -> str:
        """This MSH with MSH-7 and MSH-10 (neither holds a separator: digits, `+`, letters)."""
        return f"{self.before_time}{time_}{self.before_control_id}{control_id_}{self.after_control_id}"


_MAX_TEMPLATES = 1024
_TEMPLATES: dict[tuple[str, str, str, str, str, str, str, Encoding], MshTemplate] = {}


def timestamp() -> str:
    """MSH-7 of an ACK: now, to the second (written once a second)."""
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, datetime.fromtimestamp(second, UTC).strftime("%Y%m%d%H%M%S+0000"))
    return _stamp[1]


_stamp = (0, "")


def control_id() -> str:
    """MSH-10 of an ACK: 20 characters, unique to this process (8 random hex) and reply (a counter)."""
    return f"{_prefix}{next(_counter):012X}"


def _new_process() -> None:
    global _prefix, _counter
    _prefix, _counter = uuid.uuid4().hex[:8].upper(), itertools.count(1)


_prefix, _counter = "", itertools.count(1)
_new_process()
os.register_at_fork(after_in_child=_new_process)


def _err_segments(issues: tuple[Issue, ...], version: str, head: Header, hl7: Hl7Tables) -> list[str]:
    if not issues:
        return []
    enc = head.encoding
    located = [(issue, _location(issue, hl7)) for issue in issues]
    if version in _ERR_1_VERSIONS:
        return [writer.segment("ERR", [[_eld(issue, where, hl7) for issue, where in located]], enc)]
    return [writer.segment("ERR", _err_v25(issue, where, hl7), enc) for issue, where in located]


def _location(issue: Issue, hl7: Hl7Tables) -> Location | None:
    return Location.parse(issue.expression) or Location.parse(hl7.profile.hl7_location(issue.expression))


def _error_code(issue: Issue, where: Location | None, hl7: Hl7Tables) -> tuple[str, str, str]:
    codes = hl7.tables.error_codes
    place = None
    if where is not None:
        place = where.segment if where.field is None else f"{where.segment}-{where.field}"
        place = f"{place}.{where.component}" if where.component else place
    code = codes.code(issue.code, place)
    return code, codes.names.get(code, ""), "HL70357"


def _err_v25(issue: Issue, where: Location | None, hl7: Hl7Tables) -> list[Value]:
    erl: Value = None
    if where is not None:
        erl = (where.segment, str(where.sequence), _num(where.field), _num(where.repetition), _num(where.component))
    severity = _SEVERITY.get(issue.severity, "E")
    diagnostics = issue.diagnostics or None
    return [None, erl, _error_code(issue, where, hl7), severity, None, None, None, diagnostics]


def _eld(issue: Issue, where: Location | None, hl7: Hl7Tables) -> tuple[Component, ...]:
    segment = where.segment if where else None
    sequence = str(where.sequence) if where else None
    field = _num(where.field) if where else None
    return (segment, sequence, field, _error_code(issue, where, hl7))


def _num(value: int | None) -> str | None:
    return str(value) if value is not None else None
