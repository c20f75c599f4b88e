"""`GET /fhir/AuditEvent`: the audit trail, searched by `entity` (ServiceRequest/<id>), `agent`
(client id, user name, HL7 sender), `date` (with ge, gt, le, lt prefixes; may be given twice) and
`outcome` (0, 4, 8); `_count` up to 500, newest first. `GET /fhir/AuditEvent/{id}` reads one.

An organisation sees the events its own callers caused and those about its referrals. Reading the
trail is itself audited. Must not: offer any way to change the trail.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request, Response
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleLink

from gateway.api import search
from gateway.api.addressing import base_url
from gateway.api.deps import RuntimeDep
from gateway.api.representation import fhir_response
from gateway.audit.events import Entity
from gateway.auth import access
from gateway.auth.guard import principal_of
from gateway.errors import Issue, MalformedInput, NotFound
from gateway.store.audit import AuditQuery

router = APIRouter(prefix="/fhir", tags=["FHIR R4"])
SEARCH_PARAMETERS = ("entity", "agent", "date", "outcome")
OUTCOMES = ("0", "4", "8", "12")


@router.get("/AuditEvent")
async def search_audit_events(request: Request, runtime: RuntimeDep) -> Response:
    query = _query(request, access.search_filter(principal_of(request)))
    found = await runtime.audit.log.search(query)
    await runtime.audit.record("search-type", Entity("AuditEvent", query=request.url.query or ""))
    entries = [
        BundleEntry.model_validate(
            {"fullUrl": f"{base_url(request)}/AuditEvent/{r['id']}", "resource": r, "search": {"mode": "match"}}
        )
        for r in (json.loads(text) for text in found)
    ]
    bundle = Bundle(
        type="searchset",
        total=len(entries),
        entry=entries or None,
        link=[BundleLink(relation="self", url=str(request.url))],
    )
    return fhir_response(request, bundle)


@router.get("/AuditEvent/{audit_id}")
async def read_audit_event(request: Request, runtime: RuntimeDep, audit_id: str) -> Response:
    found = await runtime.audit.log.get(audit_id, access.search_filter(principal_of(request)))
    if found is None:
        raise NotFound(f"AuditEvent/{audit_id} is not known here, or not about your organisation")
    await runtime.audit.record("read", Entity(f"AuditEvent/{audit_id}"))
    return fhir_response(request, found)


def _query(request: Request, organisation: str | None) -> AuditQuery:
    values: dict[str, str] = {}
    since = before = None
    for name, value in search.parameters(request, SEARCH_PARAMETERS):
        if name == "date":
            since, before = _date_bound(value, since, before)
        else:
            values[name] = value
    outcome = values.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise MalformedInput(f"outcome must be one of {', '.join(OUTCOMES)}", Issue(outcome, "outcome", "value"))
    return AuditQuery(
        entity=_reference(values.get("entity")),
        agent=values.get("agent", "").split("|")[-1] or None,
        since=since,
        before=before,
        outcome=outcome,
        organisation=organisation,
        limit=_count(request),
    )


def _reference(entity: str | None) -> str | None:
    """`ServiceRequest/<id>`, also given as an absolute URL or with a version."""
    if not entity:
        return None
    parts = entity.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else entity


def _date_bound(value: str, since: datetime | None, before: datetime | None) -> tuple[datetime | None, datetime | None]:
    prefix, text = (value[:2], value[2:]) if value[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", value)
    start, end = _instant_range(text)
    if prefix in ("ge", "gt", "eq"):
        since = end if prefix == "gt" else start
    if prefix in ("le", "lt", "eq"):
        before = start if prefix == "lt" else end
    return since, before


def _instant_range(text: str) -> tuple[datetime, datetime]:
    """The instants a FHIR date or dateTime covers: a whole day for a date, else that instant."""
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day, day + timedelta(days=1)
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedInput(f"'{text}' is not a FHIR date or dateTime", Issue(text, "date", "value")) from exc
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at, at + timedelta(microseconds=1)


def _count(request: Request) -> int:
    text = request.query_params.get("_count", "50") or "50"
    if not text.isdigit():
        raise MalformedInput("_count must be a whole number", Issue(text, "_count", "value"))
    return max(1, min(int(text), 500))
