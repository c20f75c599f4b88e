"""HL7 v2 sample messages for tests: read byte for byte (their segment ends are part of the sample),
mapped with the real tables, and edited field by field to make the variants a test needs."""

from __future__ import annotations

import uuid
from pathlib import Path

from adapters.hl7v2 import header, parser, ref_i12, tables
from adapters.hl7v2.tables import Hl7Tables
from gateway.canonical.referral import InboundReferral
from gateway.settings import SCHEMAS_DIR, Hl7SenderOrganisations
from tests.samples import valid_nhs_number

SAMPLES = SCHEMAS_DIR / "samples" / "hl7v2"
HL7: Hl7Tables = tables.load(SCHEMAS_DIR)
MSK = "ref-i12-msk-back-pain.hl7"
IAPT = "ref-i12-iapt-low-mood.hl7"
CUSTOM = "ref-i12-custom-encoding.hl7"
ESCAPES = "ref-i12-escapes.hl7"
LF = "ref-i12-lf-terminated.hl7"
ZSEG = "ref-i12-z-segments.hl7"


def sample_names() -> list[str]:
    return sorted(p.name for p in SAMPLES.glob("*.hl7"))


def sample(name: str) -> str:
    """The sample exactly as stored (read_text would turn its CR segment ends into LF)."""
    return (SAMPLES / name).read_bytes().decode("utf-8")


def expected_path(name: str) -> Path:
    return SAMPLES / name.replace(".hl7", ".json")


def referral(
    text: str, correlation_id: str | None = None, organisations: Hl7SenderOrganisations | None = None
) -> InboundReferral:
    """Map as the MLLP handler does: the header read and checked once, then passed to the mapping."""
    message = parser.parse(text)
    head = header.read(message)
    kind = header.check(head, HL7.profile)
    return ref_i12.to_referral(message, head, kind, HL7, organisations, correlation_id)


def segments(text: str) -> list[str]:
    return [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]


def join(lines: list[str]) -> str:
    return "\r".join(lines) + "\r"


def without(text: str, name: str) -> str:
    """The message without any `name` segment (standard encoding characters)."""
    return join([s for s in segments(text) if not s.startswith(f"{name}|")])


def with_field(text: str, name: str, number: int, value: str, occurrence: int = 1) -> str:
    """The message with SEG-number replaced in the `occurrence`-th `name` segment."""
    out, seen = [], 0
    for seg in segments(text):
        if seg.startswith(f"{name}|"):
            seen += 1
            if seen == occurrence:
                seg = _set(seg, number - (1 if name == "MSH" else 0), value)
        out.append(seg)
    return join(out)


def _set(seg: str, index: int, value: str) -> str:
    fields = seg.split("|")
    fields += [""] * (index + 1 - len(fields))
    fields[index] = value
    return "|".join(fields)


def fresh(text: str) -> str:
    """A copy that is a new referral everywhere: new MSH-10, RF1-6 and NHS number (shared stores and
    brokers never see two tests' referrals as one). Standard encoding characters only."""
    token = uuid.uuid4().hex[:12].upper()
    text = with_field(text, "MSH", 10, f"T{token}")
    text = with_field(text, "RF1", 6, f"REF-{token}^A81001")
    return with_field(text, "PID", 3, f"{valid_nhs_number()}^^^NHS^NH")


def pas_ref_i12(nhs_number: str, prd: bool = True, accept: str = "AL", application: str = "NE") -> str:
    """A REF^I12 as a UK PAS sends one: MSH-15 AL and MSH-16 NE (commit ACKs only), an EVN, v2.4, and
    without `prd` no PRD segments at all (MSH, EVN, RF1 and PID only). A new referral each time."""
    token = uuid.uuid4().hex[:10].upper()
    lines = [
        f"MSH|^~\\&|PAS|RX1|REFERRAL-GATEWAY|RX1PN|20261120093000||REF^I12^REF_I12|PAS{token}|P|2.4|||{accept}|{application}|GBR",
        "EVN|I12|20261120093000",
        "RF1|P^Pending^HL70283|R^Routine^HL70280|183545006^Referral to pain clinic^SCT||O^Outpatient^HL70284"
        f"|PAS-{token}^RX1|20261120",
    ]
    if prd:
        lines += ["PRD|RP|Jones^Sam^^^Dr|||||A81001^ODS", "PRD|RT|Integrated MSK and Pain Service|||||RX1PN^ODS"]
    lines.append(f"PID|1||{nhs_number}^^^NHS^NH||Smith^Jane||19780314|F|||14 Park Road^^Anytown^^AN1 3CD^GBR^H")
    return join(lines)


def failing_check_digit(nhs_number: str) -> str:
    """The same NHS number with another last digit: ten digits whose modulus-11 check fails."""
    return nhs_number[:9] + str((int(nhs_number[9]) + 1) % 10)
