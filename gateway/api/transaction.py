"""The BaRS headers of a messaging request, read once before the body is looked at.

- Transactional integrity: `X-Request-Id` (required) and `X-Correlation-Id` (optional; the gateway
  assigns one) are GUIDs, else `400 REC_BAD_REQUEST` naming each header at fault. The message's
  fingerprint (its X-Correlation-Id and body) goes with the request id, so the intake can tell a
  retry (same id, same fingerprint: answered again) from another message reusing an id (409).
- Access: `NHSD-End-User-Organisation` and `NHSD-Requesting-Practitioner` claim organisations; a
  caller may claim only the organisation its token holds (`all_organisations` callers, such as an
  integration hub, may act for any). A mismatch is refused with each claim named.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from fastapi import Request

from adapters.inbound.fhir import claims
from gateway.auth.principal import Principal
from gateway.errors import ClaimRefused, InvalidHeader, Issue

REQUEST_ID = "X-Request-Id"
CORRELATION_ID = "X-Correlation-Id"


@dataclass(frozen=True)
class Transaction:
    request_id: str
    digest: str  # sha256 over the sender's X-Correlation-Id (or nothing) and the body


def read(request: Request, body: bytes) -> Transaction:
    """The transaction of a message: its request id and fingerprint (a retry is told by both)."""
    request_id = request.headers.get(REQUEST_ID)
    check_ids(request, required=True)
    assert request_id is not None  # check_ids refuses a request without one
    return Transaction(request_id=request_id, digest=fingerprint(request, body))


def fingerprint(request: Request, body: bytes) -> str:
    """What tells a retry from another message under a reused request id: the sender's
    X-Correlation-Id (or nothing) and the body."""
    correlation = request.headers.get(CORRELATION_ID)
    return hashlib.sha256((correlation or "").encode() + b"\n" + body).hexdigest()


def check_ids(request: Request, required: bool = False) -> None:
    """The transaction ids sent are GUIDs (and X-Request-Id is there, where `required`)."""
    request_id = request.headers.get(REQUEST_ID)
    correlation = request.headers.get(CORRELATION_ID)
    issues = []
    if not request_id and required:
        issues.append(Issue(f"the {REQUEST_ID} header is missing", REQUEST_ID, "required"))
    elif request_id and not is_guid(request_id):
        issues.append(Issue(f"'{request_id}' is not a GUID", REQUEST_ID, "value"))
    if correlation is not None and not is_guid(correlation):
        issues.append(Issue(f"'{correlation}' is not a GUID", CORRELATION_ID, "value"))
    if issues:
        raise InvalidHeader(f"{REQUEST_ID} and {CORRELATION_ID} must be GUIDs (BaRS transactional integrity)", *issues)


def is_guid(value: str) -> bool:
    """A GUID as BaRS writes it: 8-4-4-4-12 hexadecimal digits (any case, optional braces)."""
    text = value.strip("{}")
    if len(text) != 36:
        return False
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def check_claims(request: Request, principal: Principal) -> claims.Claims:
    """The access headers' claims, refused unless the caller's token holds each organisation claimed."""
    read_claims = claims.read({name: request.headers.get(name) for name in claims.HEADERS})
    if principal.all_organisations:
        return read_claims
    wrong = [
        Issue(f"{header} names {ods}; the token acts for {principal.ods}", header, "forbidden")
        for header, ods in read_claims.organisations.items()
        if ods != principal.ods
    ]
    if wrong:
        raise ClaimRefused(
            f"{principal.id} acts for {principal.ods}, not for the organisation its headers claim", *wrong
        )
    return read_claims
