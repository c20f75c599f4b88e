"""The search parameters each FHIR resource supports, and a request's parameters checked against them.

The tables are data that both the routers and the CapabilityStatement read, so the statement never
imports a router. Result parameters (`_count`, `_format`, ...) are left to the caller; an unknown
parameter is refused rather than ignored, so a typo never widens a search to every record.
"""

from __future__ import annotations

from collections.abc import Collection

from fastapi import Request

from gateway.errors import Issue, MalformedInput

#: ServiceRequest search parameters and the store column each one reads (system|value tokens are accepted).
SERVICE_REQUEST = {
    "identifier": "identifier_value",
    "patient": "nhs_number",
    "subject": "nhs_number",
    "requester": "requester",
    "performer": "performer",
    "status": "status",
}
#: The ServiceRequest search on `meta.tag` (the referral flags, gateway/canonical/patient.py).
TAG = "_tag"
#: Task search parameters and the store column each one reads.
TASK = {
    "focus": "referral_id",
    "based-on": "referral_id",
    "patient": "nhs_number",
    "owner": "owner",
    "requester": "requester",
    "status": "status",
}
AUDIT_EVENT = ("entity", "agent", "date", "outcome")
MESSAGE_DEFINITION = ("context", "event", "url", "name", "status")


def parameters(request: Request, supported: Collection[str]) -> list[tuple[str, str]]:
    found = []
    for name, value in request.query_params.multi_items():
        if name.startswith("_"):
            continue
        if name not in supported:
            raise MalformedInput(
                f"search parameter '{name}' is not supported",
                Issue(f"supported: {', '.join(supported)}", name, "not-supported"),
            )
        found.append((name, value))
    return found
