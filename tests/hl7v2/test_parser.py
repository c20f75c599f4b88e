"""The ER7 reader: encoding characters from MSH-1/MSH-2, escapes, repetitions, components and
subcomponents, every kind of segment end, and Z-segments. Pure: no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.hl7v2 import escapes, parser
from adapters.hl7v2.parser import Encoding
from gateway.errors import MalformedInput
from tests.hl7v2.messages import CUSTOM, LF, MSK, ZSEG, sample, segments

STANDARD_MSH = "MSH|^~\\&|EMISWeb|A81001|GW|RX1PN|20261120093000||REF^I12^REF_I12|M1|P|2.5.1"


def test_msh_fields_are_numbered_as_hl7_numbers_them() -> None:
    msh = parser.parse(STANDARD_MSH).msh
    assert msh.raw(1) == "|" and msh.raw(2) == "^~\\&"
    assert msh.text(3) == "EMISWeb" and msh.text(4) == "A81001"
    assert (msh.text(9, 1), msh.text(9, 2), msh.text(9, 3)) == ("REF", "I12", "REF_I12")
    assert msh.text(10) == "M1" and msh.text(12) == "2.5.1"


def test_other_segments_number_fields_from_one_after_the_name() -> None:
    message = parser.parse(sample(MSK))
    pid = message.first("PID")
    assert pid is not None and pid.text(1) == "1" and pid.text(7) == "19780314" and pid.text(8) == "F"


def test_repetitions_components_and_subcomponents() -> None:
    message = parser.parse(f"{STANDARD_MSH}\rPID|1||111^^^NHS&2.16.840.1.113883.2.1.4.1&ISO^NH~222^^^A81001^PI")
    pid = message.first("PID")
    assert pid is not None
    first, second = pid.repeats(3)
    assert first.get(1) == "111" and first.get(4) == "NHS" and first.get(4, 2) == "2.16.840.1.113883.2.1.4.1"
    assert first.get(4, 3) == "ISO" and first.get(5) == "NH"
    assert second.get(1) == "222" and second.get(4, 2) == "" and second.get(9) == ""
    assert pid.first(3).get(1) == "111"


def test_absent_fields_read_as_empty() -> None:
    pid = parser.parse(f"{STANDARD_MSH}\rPID|1").first("PID")
    assert pid is not None and pid.text(30) == "" and pid.repeats(3) == [] and not pid.first(5)


@pytest.mark.parametrize("end", ["\r", "\n", "\r\n"])
def test_segments_may_end_in_cr_lf_or_crlf(end: str) -> None:
    text = end.join([STANDARD_MSH, "PID|1||9434765919^^^NHS^NH", "", "PV1|1|O"]) + end
    message = parser.parse(text)
    assert [s.name for s in message] == ["MSH", "PID", "PV1"]
    assert message.msh.text(12) == "2.5.1", "the last MSH field does not carry the line end"


def test_an_lf_terminated_sample_reads_like_any_other() -> None:
    assert "\r" not in sample(LF)
    assert [s.name for s in parser.parse(sample(LF))][:4] == ["MSH", "RF1", "PRD", "PRD"]


def test_custom_encoding_characters_come_from_msh_1_and_msh_2() -> None:
    message = parser.parse(sample(CUSTOM))
    assert message.encoding == Encoding(field="*", component="$", repetition="!", escape="@", subcomponent="%")
    prd = message.first("PRD")
    assert prd is not None
    assert [(p.get(1), p.get(2)) for p in prd.repeats(7)] == [("C84012", "ODS"), ("G8345678", "GMP")]
    assert message.msh.text(9, 2) == "I12"


def test_escape_sequences_decode_for_the_messages_own_escape_character() -> None:
    custom = "MSH*$!@%*APP\rNTE*1*P*a@F@b@S@c@T@d@R@e@E@f@X41@"
    note = parser.parse(custom).first("NTE")
    assert note is not None and note.text(3) == "a*b$c%d!e@fA"


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("8\\S\\10", "8^10"),
        ("a\\F\\b", "a|b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("C:\\E\\temp", "C:\\temp"),
        ("Zo\\XC3AB\\", "Zoë"),
        ("caf\\XE9\\", "café"),
        ("line one\\.br\\line two", "line one\nline two"),
        ("\\H\\urgent\\N\\ review", "urgent review"),
        ("\\.in+4\\indented", "indented"),
        ("\\Zlocal\\text", "text"),
        ("no closing \\ here", "no closing \\ here"),
        ("unknown \\Q\\ kept", "unknown \\Q\\ kept"),
    ],
)
def test_escape_sequences(escaped: str, plain: str) -> None:
    nte = parser.parse(f"{STANDARD_MSH}\rNTE|1|P|{escaped}").first("NTE")
    assert nte is not None and nte.text(3) == plain


def test_an_escaped_separator_never_splits_a_field() -> None:
    pid = parser.parse(f"{STANDARD_MSH}\rPID|1||||O\\S\\Neill\\R\\x^Ann").first("PID")
    assert pid is not None and len(pid.repeats(5)) == 1
    assert pid.text(5, 1) == "O^Neill~x" and pid.text(5, 2) == "Ann"


def test_z_segments_are_kept_in_order_and_never_interpreted() -> None:
    message = parser.parse(sample(ZSEG))
    names = [s.name for s in message]
    assert names.index("ZPI") < names.index("RF1") and names[-1] == "ZNT"
    assert message.first("ZRF") is not None


def test_message_type_without_the_structure_component() -> None:
    msh = parser.parse(sample(ZSEG)).msh
    assert (msh.text(9, 1), msh.text(9, 2), msh.text(9, 3)) == ("REF", "I12", "")


def test_the_occurrence_of_a_segment_is_its_place_among_its_namesakes() -> None:
    message = parser.parse(sample(MSK))
    second_prd = message.all("PRD")[1]
    assert message.occurrence(second_prd) == 2


@pytest.mark.parametrize("text", ["", "hello", "PID|1||123", "MSH", "MSH|^~", "MSH|^^\\&|X", "MSHA^~\\&|X"])
def test_text_that_is_not_hl7_is_malformed(text: str) -> None:
    with pytest.raises(MalformedInput) as refused:
        parser.parse(text)
    assert refused.value.issues[0].expression in {"MSH", "MSH-2"}


def test_leading_noise_before_msh_is_ignored() -> None:
    assert parser.parse("\ufeff\r\n" + STANDARD_MSH).msh.text(10) == "M1"


def test_every_sample_parses_to_the_segments_it_holds() -> None:
    for name in (MSK, CUSTOM, LF, ZSEG):
        text = sample(name)
        assert len(parser.parse(text).segments) == len(segments(text))


separators = st.sampled_from(["|^~\\&", "*$!@%", "#:;?/"])


@given(text=st.text(), chars=separators)
def test_escaping_then_reading_gives_back_any_text(text: str, chars: str) -> None:
    enc = Encoding(*chars)
    value = text.replace("\r\n", "\n").replace("\r", "\n")
    line = f"MSH{enc.field}{enc.msh_2}{enc.field}APP\rNTE{enc.field}1{enc.field}{escapes.escape(value, enc, True)}"
    nte = parser.parse(line).first("NTE")
    assert nte is not None and nte.first(2).text() == value
