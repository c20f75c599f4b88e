"""Pure parts of the inbound log: what a refusal's reason class is, the frame's bytes from the text the
listener decoded, and a message shown with each issue where it is, masked unless allowed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.errors import (
    Forbidden,
    GatewayError,
    InvalidReferral,
    Issue,
    MalformedInput,
    NotFound,
    StoreUnavailable,
    UnroutableReferral,
    UnsupportedInput,
)
from gateway.inbound_log.arrival import Arrival, frame_received, reason_of, wire_bytes
from gateway.inbound_log.resubmit import diff
from gateway.monitoring.inbound import show
from gateway.store.inbound import LoggedMessage
from tests.hl7v2.messages import MSK, sample


@pytest.mark.parametrize(
    ("error", "in_intake", "reason"),
    [
        (MalformedInput("not HL7"), False, "unreadable"),
        (UnsupportedInput("text/plain is not taken"), False, "unreadable"),
        (UnsupportedInput("REF^I13", Issue("taken: REF^I12", "MSH-9.2")), False, "header"),
        (MalformedInput("no X-Request-Id", Issue("missing", "X-Request-Id")), False, "header"),
        (InvalidReferral("no NHS number", Issue("none", "PID-3")), False, "mapping"),
        (InvalidReferral("not UK Core", Issue("none", "ServiceRequest.subject")), True, "ukcore"),
        (UnroutableReferral("no service"), True, "routing"),
        (Forbidden("MSH-4 may not send", Issue("not allowed", "MSH-4")), False, "authorisation"),
        (NotFound("no such referral"), True, "state"),
        (StoreUnavailable("disk full"), True, "gateway"),
    ],
)
def test_each_refusal_has_its_reason_class(error: GatewayError, in_intake: bool, reason: str) -> None:
    assert reason_of(error, in_intake) == reason


def test_a_store_failure_is_a_failure_not_a_refusal() -> None:
    arrival = Arrival("hl7v2-mllp", b"MSH|")
    arrival.refuse(StoreUnavailable("the store did not commit"))
    assert arrival.final_outcome() == "failed"


@pytest.mark.parametrize("frame", ["MSH|é".encode(), "MSH|é".encode("latin-1"), b"MSH|plain"])
def test_the_log_keeps_the_frame_the_listener_read_not_the_text_it_decoded(frame: bytes) -> None:
    text = frame.decode("latin-1")
    frame_received(frame)
    assert wire_bytes(text) == frame
    assert wire_bytes("MSH|é") == "MSH|é".encode()  # once: a later handler call without a frame


def logged(raw: bytes, issues: list[dict[str, Any]], content_type: str | None = None) -> LoggedMessage:
    return LoggedMessage(
        "m1", datetime.now(UTC), "x", "s", None, None, None, None, content_type, raw, "refused", "mapping", None,
        None, issues, None, None, None,
    )  # fmt: skip


def test_an_hl7_message_is_shown_a_segment_a_line_with_the_issue_marked_at_its_field() -> None:
    text = sample(MSK).replace("\n", "\r")
    issue = {"expression": "PID-3", "diagnostics": "the NHS number in PID-3 is not valid"}
    masked = show(logged(text.encode(), [issue]), unmasked=False)
    pid = next(line for line in masked.lines if line.text.startswith("PID|"))
    assert [p.text for p in pid.parts if p.marked] == ["|***"] and "9434765919" not in pid.text
    assert "Smith" not in pid.text and pid.issues == ("PID-3: the NHS number in PID-3 is not valid",)
    shown = show(logged(text.encode(), [issue]), unmasked=True)
    pid = next(line for line in shown.lines if line.text.startswith("PID|"))
    assert [p.text for p in pid.parts if p.marked] == ["|9434765919^^^NHS^NH~E123456^^^A81001^PI"]
    msh = show(logged(text.encode(), [{"expression": "MSH-10", "diagnostics": "empty"}]), True).lines[0]
    assert [p.text for p in msh.parts if p.marked] == ["|EMIS000123"]


def test_fhir_is_shown_with_each_issue_at_its_path_or_its_nearest_element() -> None:
    resource = {"resourceType": "ServiceRequest", "subject": {"identifier": {"value": "9434765919"}}, "intent": "x"}
    issues = [
        {"expression": "ServiceRequest.subject.identifier.value", "diagnostics": "not valid"},
        {"expression": "ServiceRequest.subject.identifier.system", "diagnostics": "missing"},
        {"expression": "X-Request-Id", "diagnostics": "required"},
    ]
    view = show(logged(json.dumps(resource).encode(), issues), unmasked=True)
    marked = {line.text.strip(): line.issues for line in view.lines if line.issues}
    assert marked['"value": "9434765919"'] == ("ServiceRequest.subject.identifier.value: not valid",)
    assert marked['"identifier": {'] == ("ServiceRequest.subject.identifier.system: missing",)
    assert view.unplaced == ("X-Request-Id: required",)


def test_an_edit_is_audited_as_a_diff_of_segments() -> None:
    before, after = b"MSH|a\rPID|1||1\rPV1|1\r", b"MSH|a\r\nPID|1||2\r\nPV1|1\r\n"
    assert diff(before, after).splitlines()[2:] == ["@@ -1,3 +1,3 @@", " MSH|a", "-PID|1||1", "+PID|1||2", " PV1|1"]


def test_an_issue_at_a_later_segment_of_a_name_marks_that_segment() -> None:
    text = sample(MSK).replace("\n", "\r")
    issue = {"expression": "PRD[2]-7", "diagnostics": "not an ODS organisation code"}
    lines = show(logged(text.encode(), [issue]), unmasked=True).lines
    prds = [line for line in lines if line.text.startswith("PRD|")]
    assert [line.issues for line in prds] == [(), ("PRD[2]-7: not an ODS organisation code",)]
    assert [p.text for p in prds[1].parts if p.marked] == ["|RX1PN^ODS"]
