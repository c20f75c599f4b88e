"""Render any `GatewayError` as a FHIR OperationOutcome: the one error shape of every HTTP route.

Each issue carries the FHIR issue type, the failing element's path, and a BaRS http-error-code
(`SEND_*`: the sender must change the request; `REC_*`: the receiving side failed), so the reader
knows whose fault it is.
"""

from __future__ import annotations

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue

from gateway.errors import GatewayError, Issue

BARS_ERROR_CODES = "https://fhir.nhs.uk/CodeSystem/http-error-codes"


def operation_outcome(error: GatewayError) -> OperationOutcome:
    details = CodeableConcept(coding=[Coding(system=BARS_ERROR_CODES, code=error.bars_code)], text=error.message)
    issues = [
        OperationOutcomeIssue(
            severity=issue.severity,
            code=issue.code or error.issue_code,
            details=details,
            diagnostics=issue.diagnostics,
            expression=[issue.expression] if issue.expression else None,
        )
        for issue in error.issues
    ]
    return OperationOutcome(issue=issues)


def information(text: str) -> OperationOutcome:
    return OperationOutcome(
        issue=[OperationOutcomeIssue(severity="information", code="informational", diagnostics=text)]
    )


def accepted(referral_id: str, warnings: tuple[Issue, ...]) -> OperationOutcome:
    """The answer to a referral taken: that it was, and each warning at its FHIRPath (what was read
    leniently, such as a system URI variant), so the sender can mend its data."""
    issues = [
        OperationOutcomeIssue(
            severity="information", code="informational", diagnostics=f"taken as ServiceRequest/{referral_id}"
        )
    ]
    issues += [
        OperationOutcomeIssue(
            severity=w.severity,
            code=w.code or "informational",
            diagnostics=w.diagnostics,
            expression=[w.expression] if w.expression else None,
        )
        for w in warnings
    ]
    return OperationOutcome(issue=issues)
