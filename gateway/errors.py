"""The gateway's one error model: every failure is a `GatewayError` that knows how each surface
renders it.

    GatewayError                 receiver's fault unless a subclass says so          REC_SERVER_ERROR
    ├── SenderError              the sender must change the request (never retried)  REC_BAD_REQUEST
    │   ├── MalformedInput       400 not parseable as what it claims to be   AR  REC_BAD_REQUEST
    │   │   └── InvalidHeader    400 a BaRS header absent or not of its form AR  REC_BAD_REQUEST
    │   ├── UnsupportedInput     415 a media or message type we do not take  AR  REC_BAD_REQUEST
    │   ├── InvalidReferral      422 parsed, but breaks FHIR / UK Core rules AE  REC_UNPROCESSABLE_ENTITY
    │   ├── UnroutableReferral   422 valid, but no service takes it          AE  REC_UNPROCESSABLE_ENTITY
    │   ├── ConsentMissing       422 the patient has not consented           AE  REC_UNPROCESSABLE_ENTITY
    │   ├── Unauthenticated      401 no valid credentials (WWW-Authenticate) AR  SEND_UNAUTHORIZED
    │   ├── Forbidden            403 not allowed this (scope, organisation,
    │   │   │                        sending facility)                       AR  SEND_FORBIDDEN
    │   │   └── ClaimRefused     403 an NHSD-* header names another organisation REC_FORBIDDEN
    │   ├── MethodNotAllowed     405 the route takes other methods (Allow)   AR  SEND_METHOD_NOT_ALLOWED
    │   ├── RateLimited          429 too many requests (Retry-After)         AE  SEND_TOO_MANY_REQUESTS
    │   ├── NotFound             404                                         AE  REC_NOT_FOUND
    │   ├── DuplicateRequest     409 a request id already processed (BaRS)   AE  REC_CONFLICT
    │   ├── Conflict             409 the change does not fit the state       AE  REC_CONFLICT
    │   │   └── StaleWrite       409 another change committed first (the store:
    │   │                            a version moved on, or a unique key taken);
    │   │                            retriable: read again and try again      AE  REC_CONFLICT
    │   └── PreconditionFailed   412 If-Match names another version          AE  REC_PRECONDITION_FAILED
    └── ReceiverError            the gateway could not do its part (retriable)       REC_SERVICE_UNAVAILABLE
        ├── StoreUnavailable     503 the store did not commit: nothing was accepted
        ├── BrokerUnavailable    503 Kafka did not answer (the outbox keeps the event)
        └── DeliveryFailed       502 a receiver did not take a delivery; `retriable`     REC_BAD_GATEWAY
            │                        per instance: down, timed out, 5xx, HL7 AE yes; 4xx, HL7 AR no
            └── NotYetTaken          in the receiver's MESH inbox, not yet downloaded (no attempt counted)

The columns: HTTP status, what it means, HL7 ACK code, BaRS code.

Reactions are class attributes (`http_status`, `ack_code`, `retriable`, `issue_code`,
`bars_code`; `headers` for HTTP headers a status needs, such as WWW-Authenticate and Retry-After)
so each surface decides with one attribute read: HTTP renders an OperationOutcome,
MLLP an ACK with ERR, a consumer retries or dead-letters. Library errors are translated to these at
the boundary (`raise StoreUnavailable(...) from exc`), never leaked.

`bars_code` is the BaRS http-error-code (https://fhir.nhs.uk/CodeSystem/http-error-codes) as the BaRS
failure scenarios assign it: `SEND_*` where BaRS has the API refuse a request before any receiver
looks at it (credentials, access, method, rate), `REC_*` for what a receiver finds (headers, content,
state, its own failures). For `$process-message` the gateway is that receiver.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One problem: what is wrong, where (a FHIRPath or an HL7 location such as `PID-3`)."""

    diagnostics: str
    expression: str | None = None
    code: str | None = None  # FHIR issue-type; defaults to the error's
    severity: str = "error"


class GatewayError(Exception):
    http_status = 500
    ack_code = "AE"
    retriable = False
    issue_code = "exception"
    bars_code = "REC_SERVER_ERROR"

    def __init__(self, message: str, *issues: Issue) -> None:
        super().__init__(message)
        self.message = message
        self.issues: tuple[Issue, ...] = issues or (Issue(message),)
        self.headers: dict[str, str] = {}


class SenderError(GatewayError):
    http_status = 400
    ack_code = "AE"
    issue_code = "invalid"
    bars_code = "REC_BAD_REQUEST"


class MalformedInput(SenderError):
    http_status = 400
    ack_code = "AR"
    issue_code = "structure"


class InvalidHeader(MalformedInput):
    """A transaction header (X-Request-Id, X-Correlation-Id, NHSD-*) absent or not of its form."""

    issue_code = "value"


class UnsupportedInput(SenderError):
    http_status = 415
    ack_code = "AR"
    issue_code = "not-supported"


class InvalidReferral(SenderError):
    http_status = 422
    issue_code = "invalid"
    bars_code = "REC_UNPROCESSABLE_ENTITY"


class UnroutableReferral(SenderError):
    http_status = 422
    issue_code = "business-rule"
    bars_code = "REC_UNPROCESSABLE_ENTITY"


class ConsentMissing(SenderError):
    http_status = 422
    issue_code = "business-rule"
    bars_code = "REC_UNPROCESSABLE_ENTITY"


class Unauthenticated(SenderError):
    """No credentials, or credentials that do not hold (expired, tampered, revoked). `error` is the
    RFC 6750 code: absent when none were sent, `invalid_token` otherwise."""

    http_status = 401
    ack_code = "AR"
    issue_code = "login"
    bars_code = "SEND_UNAUTHORIZED"

    def __init__(self, message: str, *issues: Issue, error: str | None = "invalid_token") -> None:
        super().__init__(message, *issues)
        challenge = 'Bearer realm="referral-gateway"'
        if error:
            challenge += f', error="{error}", error_description="{_quoted(message)}"'
        self.headers = {"WWW-Authenticate": challenge}


class Forbidden(SenderError):
    http_status = 403
    ack_code = "AR"
    issue_code = "forbidden"
    bars_code = "SEND_FORBIDDEN"


class ClaimRefused(Forbidden):
    """The caller's token is good, but a header claims an organisation the token does not hold."""

    bars_code = "REC_FORBIDDEN"


class MethodNotAllowed(SenderError):
    http_status = 405
    ack_code = "AR"
    issue_code = "not-supported"
    bars_code = "SEND_METHOD_NOT_ALLOWED"

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.headers = {"Allow": ", ".join(allowed)}


class RateLimited(SenderError):
    http_status = 429
    issue_code = "throttled"
    bars_code = "SEND_TOO_MANY_REQUESTS"

    def __init__(self, message: str, retry_after_s: int, first_refusal: bool = True) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.first_refusal = first_refusal  # the first since the caller last got through (audited once)
        self.headers = {"Retry-After": str(retry_after_s)}


class NotFound(SenderError):
    http_status = 404
    issue_code = "not-found"
    bars_code = "REC_NOT_FOUND"


class DuplicateRequest(SenderError):
    http_status = 409
    issue_code = "duplicate"
    bars_code = "REC_CONFLICT"


class Conflict(SenderError):
    http_status = 409
    issue_code = "conflict"
    bars_code = "REC_CONFLICT"


class StaleWrite(Conflict):
    """The store found that another change committed first: the row's version moved on, or (with
    `unique_key`) the key this write claims (a sender's message id) was taken meanwhile. Raised by
    the store for every optimistic write; reading again and trying again can succeed."""

    retriable = True

    def __init__(self, message: str, *issues: Issue, unique_key: bool = False) -> None:
        super().__init__(message, *issues)
        self.unique_key = unique_key


class PreconditionFailed(SenderError):
    http_status = 412
    issue_code = "conflict"
    bars_code = "REC_PRECONDITION_FAILED"


class ReceiverError(GatewayError):
    http_status = 503
    retriable = True
    issue_code = "transient"
    bars_code = "REC_SERVICE_UNAVAILABLE"


class StoreUnavailable(ReceiverError):
    pass


class BrokerUnavailable(ReceiverError):
    pass


class DeliveryFailed(ReceiverError):
    """A receiver did not take a delivery. Whether trying again can help depends on its answer, so
    `retriable` is set per instance (a 503 or a timeout: yes; a 400 or an HL7 AR: no)."""

    http_status = 502
    bars_code = "REC_BAD_GATEWAY"

    def __init__(self, message: str, *issues: Issue, retriable: bool = True) -> None:
        super().__init__(message, *issues)
        self.retriable = retriable

    #: False: the receiver's mailbox holds the delivery and it has not been taken yet (MESH): looked
    #: at again later, and not counted against the attempts that lead to a dead letter.
    counts_as_attempt = True


class NotYetTaken(DeliveryFailed):
    """Delivered to a store-and-forward mailbox that the receiver has not emptied yet (MESH): the
    next attempt follows the same message; only its failure (expired, undeliverable) is counted."""

    counts_as_attempt = False


def _quoted(text: str) -> str:
    """RFC 6750 error_description: printable ASCII without quotes or backslashes."""
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E and c not in '"\\')
