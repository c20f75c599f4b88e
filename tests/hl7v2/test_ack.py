"""Acknowledgements: original mode AA / AE / AR, enhanced mode commit then application ACKs, ERR in
the form each version wants. Each ACK is also read back by hl7apy with strict validation of the
version's ACK structure, and by python-hl7: two readers that share no code with ours. Pure: no I/O."""

from __future__ import annotations

import os

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hl7apy.validation import Validator

from adapters.hl7v2 import ack, header, parser, writer
from adapters.hl7v2.header import Header
from gateway.errors import (
    GatewayError,
    InvalidReferral,
    Issue,
    MalformedInput,
    StoreUnavailable,
    UnroutableReferral,
    UnsupportedInput,
)
from tests.hl7v2.messages import CUSTOM, HL7, MSK, sample, with_field

NO_NHS_NUMBER = InvalidReferral("the patient has no NHS number", Issue("no NHS repetition", "PID-3", "required"))


def head(text: str = "") -> Header:
    return header.read(parser.parse(text or sample(MSK)))


def enhanced(accept: str, application: str) -> Header:
    return head(with_field(with_field(sample(MSK), "MSH", 15, accept), "MSH", 16, application))


def strictly_valid(text: str) -> None:
    message = parse_message(text.strip("\r"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    Validator.validate(message)


def codes(answers: list[str]) -> list[str]:
    return [parser.parse(a).first("MSA").text(1) for a in answers]  # type: ignore[union-attr]


def test_an_accepted_message_gets_one_aa_echoing_msh_10() -> None:
    (answer,) = ack.accepted(head(), HL7)
    message = parser.parse(answer)
    msa = message.first("MSA")
    assert msa is not None and (msa.text(1), msa.text(2)) == ("AA", "EMIS000123")
    assert message.first("ERR") is None
    msh = message.msh
    assert (msh.text(3), msh.text(5), msh.text(6)) == ("REFERRAL-GATEWAY", "EMISWeb", "A81001")
    assert (msh.text(9, 1), msh.text(9, 2), msh.text(9, 3), msh.text(11), msh.text(12)) == (
        "ACK",
        "I12",
        "ACK",
        "P",
        "2.5.1",
    )
    strictly_valid(answer)


def test_an_invalid_referral_gets_ae_with_err_naming_segment_field_and_reason() -> None:
    (answer,) = ack.failed(head(), NO_NHS_NUMBER, HL7)
    message = parser.parse(answer)
    msa, err = message.first("MSA"), message.first("ERR")
    assert msa is not None and err is not None
    assert (msa.text(1), msa.text(2), msa.text(3)) == ("AE", "EMIS000123", "the patient has no NHS number")
    assert [err.text(2, c) for c in (1, 2, 3)] == ["PID", "1", "3"], "ERR-2: segment, sequence, field"
    assert [err.text(3, c) for c in (1, 2, 3)] == ["101", "Required field missing", "HL70357"]
    assert err.text(4) == "E" and err.text(8) == "no NHS repetition"
    strictly_valid(answer)


def test_every_issue_gets_its_own_err_and_fhir_paths_are_reported_at_their_hl7_field() -> None:
    error = InvalidReferral(
        "The ServiceRequest does not meet the UK Core rules",
        Issue("bad check digit", "ServiceRequest.subject.identifier.value", "value"),
        Issue("not an ODS code", "ServiceRequest.performer[0].identifier.value", "value"),
        Issue("routing", "ServiceRequest.reasonCode", "business-rule"),
    )
    (answer,) = ack.failed(head(), error, HL7)
    errs = parser.parse(answer).all("ERR")
    assert [(e.text(2, 1), e.text(2, 3), e.text(3, 1)) for e in errs] == [
        ("PID", "3", "102"),
        ("PRD", "7", "102"),
        ("DG1", "3", "207"),
    ]
    strictly_valid(answer)


def test_a_location_with_occurrence_component_and_repetition_is_kept() -> None:
    error = InvalidReferral("x", Issue("a", "PRD[2]-7", "required"), Issue("b", "MSH-9.2", "not-supported"))
    errs = parser.parse(ack.failed(head(), error, HL7)[0]).all("ERR")
    assert [e.first(2).raw for e in errs] == ["PRD^2^7", "MSH^1^9^^2"]
    assert errs[1].text(3) == "201"


@pytest.mark.parametrize(
    ("error", "code", "err_3"),
    [
        (UnsupportedInput("no", Issue("x", "MSH-9", "not-supported")), "AR", "200"),
        (UnsupportedInput("no", Issue("x", "MSH-12", "not-supported")), "AR", "203"),
        (UnsupportedInput("no", Issue("x", "MSH-11", "not-supported")), "AR", "202"),
        (MalformedInput("no", Issue("x", "MSH-10", "required")), "AR", "101"),
        (UnroutableReferral("no service", Issue("x", "ServiceRequest.performer", "business-rule")), "AE", "207"),
        (StoreUnavailable("store down"), "AE", "207"),
        (GatewayError("internal error; incident 1"), "AE", "207"),
    ],
)
def test_the_ack_code_and_err_3_follow_the_error(error: GatewayError, code: str, err_3: str) -> None:
    (answer,) = ack.failed(head(), error, HL7)
    message = parser.parse(answer)
    assert message.first("MSA").text(1) == code  # type: ignore[union-attr]
    assert message.first("ERR").text(3) == err_3  # type: ignore[union-attr]
    strictly_valid(answer)


@pytest.mark.parametrize("version", ["2.3.1", "2.4"])
def test_before_v2_5_the_error_goes_in_err_1(version: str) -> None:
    error = InvalidReferral("x", Issue("a", "PID-3", "required"), Issue("b", "RF1-2", "code-invalid"))
    (answer,) = ack.failed(head(with_field(sample(MSK), "MSH", 12, version)), error, HL7)
    (err,) = parser.parse(answer).all("ERR")
    assert [r.raw for r in err.repeats(1)] == [
        "PID^1^3^101&Required field missing&HL70357",
        "RF1^1^2^103&Table value not found&HL70357",
    ]
    assert err.raw(2) == ""
    strictly_valid(answer)


def test_an_ack_uses_the_senders_encoding_characters() -> None:
    (answer,) = ack.failed(head(sample(CUSTOM)), NO_NHS_NUMBER, HL7)
    assert answer.startswith("MSH*$!@%*REFERRAL-GATEWAY**VISION*C84012*")
    message = parser.parse(answer)
    assert message.first("MSA").text(2) == "VIS-0000771"  # type: ignore[union-attr]
    assert [r.raw for r in message.first("ERR").repeats(1)] == ["PID$1$3$101%Required field missing%HL70357"]  # type: ignore[union-attr]


def test_text_with_separators_is_escaped_in_the_ack() -> None:
    error = InvalidReferral("RF1-2 'X|Y^Z' is unknown", Issue("known: R~S & A", "RF1-2", "code-invalid"))
    (answer,) = ack.failed(head(), error, HL7)
    message = parser.parse(answer)
    assert message.first("MSA").text(3) == "RF1-2 'X|Y^Z' is unknown"  # type: ignore[union-attr]
    assert message.first("ERR").text(8) == "known: R~S & A"  # type: ignore[union-attr]


def test_text_that_is_not_hl7_gets_an_ar_with_no_message_to_answer() -> None:
    answer = ack.unreadable(MalformedInput("not an HL7 v2 message", Issue("", "MSH", "structure")), HL7)
    message = parser.parse(answer)
    assert (message.first("MSA").text(1), message.first("MSA").text(2)) == ("AR", "")  # type: ignore[union-attr]
    assert message.first("ERR").text(3) == "100"  # type: ignore[union-attr]


# -- enhanced mode ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "application", "expected"),
    [
        ("AL", "AL", ["CA", "AA"]),
        ("AL", "NE", ["CA"]),
        ("NE", "AL", ["AA"]),
        ("ER", "AL", ["AA"]),
        ("SU", "ER", ["CA"]),
        ("NE", "NE", []),
    ],
)
def test_enhanced_mode_sends_what_msh_15_and_msh_16_ask_for_on_success(
    accept: str, application: str, expected: list[str]
) -> None:
    answers = ack.accepted(enhanced(accept, application), HL7)
    assert codes(answers) == expected
    for answer in answers:
        strictly_valid(answer)


@pytest.mark.parametrize(
    ("error", "accept", "application", "expected"),
    [
        (NO_NHS_NUMBER, "AL", "AL", ["CR"]),
        (NO_NHS_NUMBER, "ER", "ER", ["CR"]),
        (NO_NHS_NUMBER, "AL", "NE", ["CR"]),
        (NO_NHS_NUMBER, "NE", "NE", ["CR"]),
        (UnsupportedInput("no", Issue("x", "MSH-9", "not-supported")), "AL", "AL", ["CR"]),
        (UnsupportedInput("no", Issue("x", "MSH-9", "not-supported")), "ER", "AL", ["CR"]),
        (StoreUnavailable("store down"), "AL", "AL", ["CE"]),
        (StoreUnavailable("store down"), "SU", "AL", ["CE"]),
        (StoreUnavailable("store down"), "AL", "NE", ["CE"]),
        (GatewayError("internal error; incident 1"), "AL", "NE", ["CE"]),
    ],
)
def test_enhanced_mode_on_failure(error: GatewayError, accept: str, application: str, expected: list[str]) -> None:
    answers = ack.failed(enhanced(accept, application), error, HL7)
    assert codes(answers) == expected
    for answer in answers:
        strictly_valid(answer)


@pytest.mark.parametrize("application", ["AL", "NE", "ER", "SU"])
def test_a_refused_message_is_never_answered_ca_whatever_msh_16_asks(application: str) -> None:
    (answer,) = ack.failed(enhanced("AL", application), NO_NHS_NUMBER, HL7)
    message = parser.parse(answer)
    assert message.first("MSA").text(1) == "CR"  # type: ignore[union-attr]
    err = message.first("ERR")
    assert err is not None and [err.text(2, c) for c in (1, 3)] == ["PID", "3"] and err.text(3) == "101"


def test_a_failure_of_the_gateway_asks_the_sender_to_send_again_with_its_reason() -> None:
    (answer,) = ack.failed(enhanced("AL", "NE"), StoreUnavailable("the store did not commit the referral"), HL7)
    msa = parser.parse(answer).first("MSA")
    assert msa is not None and (msa.text(1), msa.text(3)) == ("CE", "the store did not commit the referral")


def test_original_mode_answers_are_unchanged_by_the_enhanced_rules() -> None:
    assert codes(ack.failed(head(), NO_NHS_NUMBER, HL7)) == ["AE"]
    assert codes(ack.failed(head(), StoreUnavailable("store down"), HL7)) == ["AE"]
    assert codes(ack.failed(head(), UnsupportedInput("no", Issue("x", "MSH-9", "not-supported")), HL7)) == ["AR"]


def test_mllp_block_characters_in_a_reason_are_escaped_so_the_ack_frames_whole() -> None:
    error = InvalidReferral("RF1-2 'A\x0bB\x1cC' is unknown", Issue("x", "RF1-2", "code-invalid"))
    (answer,) = ack.failed(head(), error, HL7)
    assert "\x0b" not in answer and "\x1c" not in answer
    assert parser.parse(answer).first("MSA").text(3) == "RF1-2 'A\x0bB\x1cC' is unknown"  # type: ignore[union-attr]


def test_a_commit_reject_carries_the_err() -> None:
    error = UnsupportedInput("no", Issue("x", "MSH-12", "not-supported"))
    (answer,) = ack.failed(enhanced("AL", "AL"), error, HL7)
    assert parser.parse(answer).first("ERR").text(3) == "203"  # type: ignore[union-attr]


def test_python_hl7_reads_our_acks() -> None:
    answer = ack.failed(head(), NO_NHS_NUMBER, HL7)[0]
    message = hl7.parse(answer)
    assert str(message.segment("MSA")[1]) == "AE" and str(message.segment("MSA")[2]) == "EMIS000123"
    assert str(message.segment("ERR")[3][0][0]) == "101"


# -- the MSH template and control ids ---------------------------------------------------------


def test_each_sender_is_answered_in_its_own_msh_5_and_msh_6_from_its_own_template() -> None:
    emis = head()
    vision = head(with_field(with_field(sample(MSK), "MSH", 3, "VISION"), "MSH", 4, "C84012"))
    for _ in range(3):  # the templates are written once each, then reused: never one sender's for another
        for sender, expected in ((emis, ("EMISWeb", "A81001")), (vision, ("VISION", "C84012"))):
            msh = parser.parse(ack.accepted(sender, HL7)[0]).msh
            assert (msh.text(5), msh.text(6)) == expected
            assert parser.parse(ack.accepted(sender, HL7)[0]).first("MSA").text(2) == sender.control_id  # type: ignore[union-attr]
    assert ack.MshTemplate.of(emis, HL7) is ack.MshTemplate.of(emis, HL7)
    assert ack.MshTemplate.of(emis, HL7) != ack.MshTemplate.of(vision, HL7)


@pytest.mark.parametrize("name", [MSK, CUSTOM])
def test_the_template_writes_the_msh_the_writer_would(name: str) -> None:
    sender = head(with_field(sample(MSK), "MSH", 3, "EMIS\\F\\Web")) if name == MSK else head(sample(CUSTOM))
    template = ack.MshTemplate.write(sender, HL7)
    enc, profile = sender.encoding, HL7.profile
    fields = [profile.sending_application, profile.sending_facility, sender.sending_application]
    fields += [sender.sending_facility, "20260102030405+0000", None, ("ACK", sender.trigger_event, "ACK")]
    fields += ["ABCDEF01000000000001", sender.processing_id, sender.version]
    assert template.fill("20260102030405+0000", "ABCDEF01000000000001") == writer.msh(fields, enc)


def test_ack_control_ids_are_unique_twenty_characters_with_one_prefix_per_process() -> None:
    ids = [parser.parse(ack.accepted(head(), HL7)[0]).msh.text(10) for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert {len(i) for i in ids} == {20} and len({i[:8] for i in ids}) == 1
    assert all(i.isalnum() for i in ids)


def test_a_forked_process_numbers_its_acks_under_a_prefix_of_its_own() -> None:
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child writes one control id and leaves at once
        os.write(write, ack.control_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    ours = ack.control_id()
    assert len(theirs) == 20 and theirs[:8] != ours[:8]
