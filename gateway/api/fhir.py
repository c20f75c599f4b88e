"""The FHIR R4 API under /fhir: ServiceRequest create / read / update / search, BaRS
$process-message (referrals in, and the receivers' responses that move their Tasks), and the
CapabilityStatement. Handlers parse with an adapter, call the intake and
render; errors propagate as `GatewayError`s and are rendered as OperationOutcomes by the app.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleLink

from adapters.inbound.fhir import definitions, messaging, response, rest, targets
from gateway.api import capability, outcome, search, transaction
from gateway.api.deps import CorrelationDep, RuntimeDep
from gateway.api.links import base_url, version_from_etag
from gateway.api.representation import fhir_response
from gateway.api.responses import message_response, task_response
from gateway.audit import spines
from gateway.audit.events import REFUSED, Entity
from gateway.auth import access
from gateway.auth.guard import principal_of
from gateway.canonical import nhs_number, patient, systems
from gateway.canonical.referral import stored_service_request
from gateway.errors import Forbidden, Issue, MalformedInput, NotFound
from gateway.intake import Acceptance
from gateway.store import StoredReferral
from gateway.store.store import Prefix

router = APIRouter(prefix="/fhir", tags=["FHIR R4"])


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    return fhir_response(request, capability.statement(request.app.state.runtime.settings))


@router.post("/ServiceRequest")
async def create_service_request(
    request: Request,
    runtime: RuntimeDep,
    correlation: CorrelationDep,
    x_request_id: Annotated[str | None, Header()] = None,
) -> Response:
    """A create; with an X-Request-Id, a retry (same id, correlation id and body) is answered with the
    referral it made, and the id reused for another message is a 409, never the earlier referral."""
    body = await request.body()
    read = rest.read(
        body,
        request.headers.get("content-type"),
        request.headers.get(targets.HEADER),
        runtime.router.directory.service_owner,
    )
    access.check_sender(principal_of(request), read.service_request)
    digest = transaction.fingerprint(request, body) if x_request_id else None
    inbound = rest.inbound(read, correlation, x_request_id, digest)
    acceptance = await runtime.intake.take(inbound)
    status = 201 if acceptance.created else 200
    if "return=operationoutcome" in request.headers.get("prefer", "").replace(" ", "").lower():
        headers = _version_headers(request, acceptance.referral_id, acceptance.version)
        return fhir_response(request, outcome.accepted(acceptance.referral_id, read.warnings), status, headers)
    return _acceptance_response(request, acceptance, status)


@router.get("/ServiceRequest/{referral_id}")
async def read_service_request(request: Request, runtime: RuntimeDep, referral_id: str) -> Response:
    stored = await _stored(request, runtime, referral_id)
    await runtime.audit.record("read", spines.referral_entity(stored))
    return fhir_response(request, stored.resource, headers=_version_headers(request, stored.id, stored.version))


@router.get("/ServiceRequest/{referral_id}/_history/{version}")
async def vread_service_request(request: Request, runtime: RuntimeDep, referral_id: str, version: str) -> Response:
    stored = await _stored(request, runtime, referral_id)
    await runtime.audit.record("vread", spines.referral_entity(stored))
    if version != str(stored.version):
        raise NotFound(
            f"version {version} of ServiceRequest/{referral_id} is not kept; the current one is {stored.version}"
        )
    return fhir_response(request, stored.resource, headers=_version_headers(request, stored.id, stored.version))


@router.put("/ServiceRequest/{referral_id}")
async def update_service_request(
    request: Request,
    runtime: RuntimeDep,
    correlation: CorrelationDep,
    referral_id: str,
    if_match: Annotated[str | None, Header()] = None,
    x_request_id: Annotated[str | None, Header()] = None,
) -> Response:
    read = rest.read(
        await request.body(),
        request.headers.get("content-type"),
        request.headers.get(targets.HEADER),
        runtime.router.directory.service_owner,
    )
    sr = read.service_request
    if sr.id is not None and sr.id != referral_id:
        raise MalformedInput(
            "the resource id does not match the URL",
            Issue(f"id '{sr.id}' differs from '{referral_id}'", "ServiceRequest.id", "invariant"),
        )
    acceptance = await runtime.intake.update(
        rest.inbound(read, correlation, x_request_id),
        referral_id,
        version_from_etag(if_match),
        authorise=access.referral_check(principal_of(request)),
    )
    return _acceptance_response(request, acceptance, 200)


@router.get("/ServiceRequest")
async def search_service_requests(request: Request, runtime: RuntimeDep) -> Response:
    criteria = _criteria(request)
    count = int(request.query_params.get("_count", "50") or 50)
    organisation = access.search_filter(principal_of(request))
    found = await runtime.store.search(criteria, limit=max(1, min(count, 500)), organisation=organisation)
    query = Entity("ServiceRequest", query=request.url.query or "")
    await runtime.audit.record("search-type", query, *(spines.referral_entity(s) for s in found))
    return fhir_response(request, _searchset(request, found))


@router.post("/$process-message")
async def process_message(request: Request, runtime: RuntimeDep, correlation: CorrelationDep) -> Response:
    """BaRS messaging: a `servicerequest-request` is a referral (new, update, delete); a
    `servicerequest-response` is its receiver's answer, which moves the referral's Task."""
    body = await request.body()
    sent = transaction.read(request, body)
    principal = principal_of(request)
    claimed = transaction.check_claims(request, principal)
    message = messaging.read(body, request.headers.get("content-type"))
    definitions.check(message, definitions.load(runtime.settings.schemas_dir))
    if message.event == systems.BARS_EVENT_SERVICEREQUEST_RESPONSE:
        answer = response.from_message(message, sent.request_id, sent.digest)
        moved = await runtime.status.answer(answer, sender=principal.ods, authorise=access.referral_check(principal))
        return fhir_response(request, task_response(moved.resource, sent.request_id), 200)
    inbound = messaging.referral(
        message,
        sent.request_id,
        correlation,
        sent.digest,
        request.headers.get(targets.HEADER),
        runtime.router.directory.service_owner,
    )
    inbound = dataclasses.replace(inbound, claims=claimed.recorded())
    access.check_message_sender(principal, inbound.sender)
    access.check_sender(principal, inbound.service_request)
    acceptance = await runtime.intake.replayed(inbound)
    if acceptance is None and inbound.reason == "new":
        acceptance = await runtime.intake.accept(inbound)
    elif acceptance is None:
        acceptance = await runtime.intake.update(inbound, authorise=access.referral_check(principal))
    return fhir_response(request, message_response(acceptance, inbound), 200)


def _acceptance_response(request: Request, acceptance: Acceptance, status: int) -> Response:
    headers = _version_headers(request, acceptance.referral_id, acceptance.version)
    headers["Location"] = f"{base_url(request)}/ServiceRequest/{acceptance.referral_id}/_history/{acceptance.version}"
    return fhir_response(request, acceptance.resource, status, headers)


def _version_headers(request: Request, referral_id: str, version: int) -> dict[str, str]:
    return {"ETag": f'W/"{version}"', "Content-Location": f"{base_url(request)}/ServiceRequest/{referral_id}"}


async def _stored(request: Request, runtime: RuntimeDep, referral_id: str) -> StoredReferral:
    """The referral, if the caller's organisation is a party to it (Forbidden otherwise)."""
    stored = await runtime.store.get(referral_id)
    if stored is None:
        raise NotFound(f"ServiceRequest/{referral_id} is not known here")
    try:
        access.check_referral(principal_of(request), stored)
    except Forbidden as exc:
        await runtime.audit.note("read", spines.referral_entity(stored), outcome=REFUSED, description=exc.message)
        raise
    return stored


def _criteria(request: Request) -> dict[str, str]:
    criteria: dict[str, str] = {}
    for name, value in search.parameters(request, search.SERVICE_REQUEST):
        token = value.split("|")[-1]
        if search.SERVICE_REQUEST[name] == "nhs_number":
            token = nhs_number.normalise(token.removeprefix("Patient/"))
        criteria[search.SERVICE_REQUEST[name]] = token
    tag = request.query_params.get(search.TAG)
    if tag:
        criteria["nhs_number"] = _untraced_tag(tag.split("|")[-1])
    return criteria


def _untraced_tag(token: str) -> Prefix:
    if token != systems.FLAG_NHS_NUMBER_TO_BE_TRACED[0]:
        raise MalformedInput(
            f"_tag searches take {systems.FLAG_NHS_NUMBER_TO_BE_TRACED[0]} only",
            Issue(f"unknown tag '{token}'", search.TAG, "not-supported"),
        )
    return Prefix(patient.UNTRACED_PREFIX)


def _searchset(request: Request, found: list[StoredReferral]) -> Bundle:
    entries = [
        BundleEntry.model_validate(
            {
                "fullUrl": f"{base_url(request)}/ServiceRequest/{s.id}",
                "resource": stored_service_request(s.resource).model_dump(),
                "search": {"mode": "match"},
            }
        )
        for s in found
    ]
    return Bundle(
        type="searchset",
        total=len(found),
        entry=entries or None,
        link=[BundleLink(relation="self", url=str(request.url))],
    )
