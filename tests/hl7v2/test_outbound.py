"""The outbound encoder: canonical ServiceRequest -> REF^I12 (I13, I14) and Task -> RRI^I12. HL7 -> FHIR
-> HL7 keeps every mapped field; hl7apy checks each message against the v2.5 structure. Pure: no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hl7apy.validation import Validator

from adapters.hl7v2 import encode as hl7v2
from adapters.hl7v2 import parser
from adapters.hl7v2 import tables as hl7_tables
from adapters.outbound.receipt import Outgoing
from gateway.canonical import patient
from gateway.canonical import referral as ref
from gateway.canonical.task import initial_task
from gateway.settings import SCHEMAS_DIR
from tests.hl7v2.messages import ESCAPES, MSK, referral, sample, sample_names
from tests.samples import service_request

SENT_AT = "2026-11-23T10:00:00.000+00:00"
HL7 = hl7_tables.load(SCHEMAS_DIR)


def canonical(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(referral(sample(name)).service_request.model_dump_json())
    return data


def strictly_valid(text: str) -> None:
    Validator.validate(parse_message(text.strip("\r"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True))


@pytest.mark.parametrize("name", sample_names())
def test_hl7_to_fhir_to_hl7_keeps_every_mapped_field(name: str) -> None:
    first = canonical(name)
    again = json.loads(referral(hl7v2.ref_i12(first, "RT1", SENT_AT, HL7)).service_request.model_dump_json())
    assert again == first


@pytest.mark.parametrize("name", sample_names())
def test_the_ref_i12_written_is_a_valid_v2_5_ref_i12(name: str) -> None:
    strictly_valid(hl7v2.ref_i12({**canonical(name), "id": "c3f1"}, "RT1", SENT_AT, HL7))


def test_the_ref_i12_fields_a_receiver_reads() -> None:
    message = parser.parse(hl7v2.ref_i12({**canonical(MSK), "id": "c3f1"}, "RT1", SENT_AT, HL7))
    msh, rf1, pid = message.msh, message.first("RF1"), message.first("PID")
    assert rf1 is not None and pid is not None
    assert (msh.text(3), msh.text(4), msh.text(6), msh.text(7), msh.text(10)) == (
        "REFERRAL-GATEWAY",
        "A81001",
        "RX1PN",
        "20261123100000+0000",
        "RT1",
    )
    assert (rf1.text(1), rf1.text(2), rf1.first(6).raw, rf1.text(9)) == (
        "P",
        "R",
        "EMIS-REF-000123^A81001",
        "20261120093000+0000",
    )
    assert rf1.first(11).raw == "c3f1^REFERRAL-GATEWAY", "our referral id, for the receiver to quote back"
    assert pid.first(3).raw == "9434765919^^^NHS^NH"
    prds = message.all("PRD")
    assert [(p.text(1), p.first(7).raw) for p in prds] == [("RP", "A81001^ODS"), ("RT", "RX1PN^ODS")]
    assert [d.first(3).raw for d in message.all("DG1")] == ["279039007^Low back pain^SCT", "M54.5^Low back pain^I10"]


def test_text_with_separators_is_escaped() -> None:
    text = hl7v2.ref_i12(canonical(ESCAPES), "RT1", SENT_AT, HL7)
    notes = [n for n in text.split("\r") if n.startswith("NTE")]
    assert notes[0] == (
        "NTE|1|P|Pain score 8\\S\\10 at rest \\E\\ worse at night.\\.br\\Tried: paracetamol \\T\\ codeine\\R\\naproxen."
    )
    assert "PRD|RT^^HL70286|Integrated MSK \\T\\ Pain Service" in text


@pytest.mark.parametrize(("reason", "event"), [("new", "I12"), ("update", "I13"), ("delete", "I14")])
def test_the_trigger_event_follows_the_referral_events_reason(reason: str, event: str) -> None:
    outgoing = Outgoing(json.dumps(canonical(MSK)), "ev-1", reason, "corr", SENT_AT)  # type: ignore[arg-type]
    message = parser.parse(hl7v2.encode_ref_i12(outgoing, "RT1", HL7))
    assert (message.msh.text(9, 1), message.msh.text(9, 2), message.msh.text(9, 3)) == ("REF", event, "REF_I12")


def test_a_referral_that_came_as_fhir_goes_out_as_a_ref_i12_that_maps_back() -> None:
    sr = service_request()
    back = referral(hl7v2.ref_i12(sr, "RT2", SENT_AT, HL7)).service_request
    assert ref.nhs_number(back) == sr["subject"]["identifier"]["value"]
    assert (ref.requester_ods(back), ref.performer_ods(back)) == ("A81001", "RX1PN")
    assert ref.business_identifier(back) == ("https://fhir.nhs.uk/Id/UBRN", sr["identifier"][0]["value"])
    assert (
        back.priority == "routine"
        and ref.codes(back.reasonCode) == {"279039007"}
        and ref.codes(back.code) == {"183545006"}
    )
    assert back.note is not None and back.note[0].text == sr["note"][0]["text"]


# -- RRI^I12: where the referral stands -----------------------------------------------------------


STORED = {**canonical(MSK), "id": "c3f1"}


def task(status: str, reason: str | None = None) -> dict[str, Any]:
    found = initial_task(STORED, status)
    if reason:
        found["statusReason"] = {"text": reason}
    return found


@pytest.mark.parametrize(
    ("status", "rf1_1"),
    [
        ("accepted", "A"),
        ("rejected", "R"),
        ("in-progress", "A"),
        ("completed", "A"),
        ("received", "P"),
        ("cancelled", "R"),
    ],
)
def test_rri_i12_carries_the_task_status(status: str, rf1_1: str) -> None:
    text = hl7v2.rri_i12(
        task(status, "Not suitable: see note" if status == "rejected" else None), STORED, "RR1", SENT_AT, HL7
    )
    message = parser.parse(text)
    assert (message.msh.text(9, 1), message.msh.text(9, 2)) == ("RRI", "I12")
    assert message.first("RF1").text(1) == rf1_1  # type: ignore[union-attr]
    assert message.first("RF1").first(6).raw == "EMIS-REF-000123^A81001"  # type: ignore[union-attr]
    assert message.first("PID").text(3) == "9434765919"  # type: ignore[union-attr]
    notes = [n.text(3) for n in message.all("NTE")]
    assert notes[0] == f"Referral status: {status}"
    strictly_valid(text)


def test_rri_i12_gives_the_reason_for_a_rejection() -> None:
    message = parser.parse(hl7v2.rri_i12(task("rejected", "Not suitable: see note"), STORED, "RR1", SENT_AT, HL7))
    assert [n.text(3) for n in message.all("NTE")] == ["Referral status: rejected", "Not suitable: see note"]
    assert message.msh.text(4) == "RX1PN" and message.msh.text(6) == "A81001", "from the receiver, to the referrer"


def test_encode_rri_i12_reads_the_task_event() -> None:
    outgoing = Outgoing(json.dumps(task("accepted")), "ev-2", "update", "corr", SENT_AT)
    assert parser.parse(hl7v2.encode_rri_i12(outgoing, STORED, "RR2", HL7)).first("RF1").text(1) == "A"  # type: ignore[union-attr]


def test_a_patient_without_an_nhs_number_goes_out_as_trace_required_not_as_an_empty_nhs_number() -> None:
    sr = {**canonical(MSK), "id": "c3f1"}
    person = next(c for c in sr["contained"] if c["resourceType"] == "Patient") if "contained" in sr else {}
    mrn = {"system": "https://example.org/mrn", "value": "M1"}
    untraced = patient.untraced_patient({**person, "identifier": [mrn]})
    sr["contained"] = [c for c in sr.get("contained") or [] if c["resourceType"] != "Patient"] + [untraced]
    sr["subject"] = patient.untraced_subject()
    text = hl7v2.ref_i12(sr, "RT1", SENT_AT, HL7)
    strictly_valid(text)
    pid = parser.parse(text).first("PID")
    assert pid is not None
    assert [rep.raw for rep in pid.repeats(3)] == [f"{patient.untraced_key('c3f1')}^^^REFERRAL-GATEWAY^PI", "M1"]
    assert pid.text(32) == "NSTS03"
    assert "^^^NHS^NH" not in text


def test_a_patient_without_an_nhs_number_or_any_other_identifier_still_has_a_pid_3() -> None:
    sr = {**canonical(MSK), "id": "c3f1", "subject": patient.untraced_subject()}
    sr["contained"] = [c for c in sr.get("contained") or [] if c["resourceType"] != "Patient"]
    sr["contained"].append(patient.untraced_patient({"name": [{"family": "Smith"}], "birthDate": "1971-03-14"}))
    text = hl7v2.ref_i12(sr, "RT1", SENT_AT, HL7)
    strictly_valid(text)
    pid = parser.parse(text).first("PID")
    assert pid is not None and pid.first(3).raw == f"{patient.untraced_key('c3f1')}^^^REFERRAL-GATEWAY^PI"
