"""FHIR Task under /fhir: how a referrer reads what became of a referral, and how a receiver moves
it along (PUT a whole Task, or PATCH it with JSON Patch)."""

from __future__ import annotations

import json
from typing import Annotated, cast

import jsonpatch
from fastapi import APIRouter, Header, Request, Response
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from adapters.inbound.fhir.parse import invalid, parse
from gateway.api import search
from gateway.api.addressing import base_url, version_from_etag
from gateway.api.deps import RuntimeDep
from gateway.api.representation import fhir_response
from gateway.auth import access
from gateway.auth.guard import principal_of
from gateway.canonical import nhs_number
from gateway.errors import Issue, MalformedInput, NotFound, UnsupportedInput
from gateway.store.tasks import StoredTask

router = APIRouter(prefix="/fhir", tags=["FHIR R4"])

SEARCH_PARAMETERS = {
    "focus": "referral_id",
    "based-on": "referral_id",
    "patient": "nhs_number",
    "owner": "owner",
    "requester": "requester",
    "status": "status",
}


@router.get("/Task/{task_id}")
async def read_task(request: Request, runtime: RuntimeDep, task_id: str) -> Response:
    stored = await _stored(request, runtime, task_id)
    return fhir_response(request, stored.resource, headers={"ETag": f'W/"{stored.version}"'})


@router.get("/Task/{task_id}/_history")
async def task_history(request: Request, runtime: RuntimeDep, task_id: str) -> Response:
    await _stored(request, runtime, task_id)
    versions = [json.loads(v) for v in reversed(await runtime.status.tasks.versions(task_id))]
    entries = [
        BundleEntry.model_validate({"fullUrl": f"{base_url(request)}/Task/{task_id}", "resource": v}) for v in versions
    ]
    return fhir_response(request, Bundle(type="history", total=len(entries), entry=entries or None))


@router.get("/Task")
async def search_tasks(request: Request, runtime: RuntimeDep) -> Response:
    criteria: dict[str, str] = {}
    for name, value in search.parameters(request, SEARCH_PARAMETERS):
        token = value.split("|")[-1].removeprefix("ServiceRequest/")
        criteria[SEARCH_PARAMETERS[name]] = nhs_number.normalise(token) if name == "patient" else token
    found = await runtime.status.tasks.search(criteria, organisation=access.search_filter(principal_of(request)))
    entries = [
        BundleEntry.model_validate(
            {
                "fullUrl": f"{base_url(request)}/Task/{t.id}",
                "resource": json.loads(t.resource),
                "search": {"mode": "match"},
            }
        )
        for t in found
    ]
    return fhir_response(request, Bundle(type="searchset", total=len(entries), entry=entries or None))


@router.put("/Task/{task_id}")
async def update_task(
    request: Request, runtime: RuntimeDep, task_id: str, if_match: Annotated[str | None, Header()] = None
) -> Response:
    proposed = cast(Task, parse(await request.body(), request.headers.get("content-type"), Task))
    if proposed.id is not None and proposed.id != task_id:
        raise MalformedInput(
            "the resource id does not match the URL", Issue(f"id '{proposed.id}'", "Task.id", "invariant")
        )
    return await _change(request, runtime, task_id, proposed, if_match)


@router.patch("/Task/{task_id}")
async def patch_task(
    request: Request, runtime: RuntimeDep, task_id: str, if_match: Annotated[str | None, Header()] = None
) -> Response:
    if not request.headers.get("content-type", "").startswith("application/json-patch+json"):
        raise UnsupportedInput("PATCH takes a JSON Patch (application/json-patch+json)")
    current = await _stored(request, runtime, task_id)
    return await _change(
        request, runtime, task_id, _patched(json.loads(current.resource), await request.body()), if_match
    )


async def _change(
    request: Request, runtime: RuntimeDep, task_id: str, proposed: Task, if_match: str | None
) -> Response:
    caller = principal_of(request)
    stored = await runtime.status.change(
        task_id,
        proposed,
        channel="fhir-rest",
        sender=caller.ods,  # the authenticated caller's organisation, as the event's ce_source says
        if_match=version_from_etag(if_match),
        authorise=access.referral_check(caller),
    )
    return fhir_response(request, stored.resource, headers={"ETag": f'W/"{stored.version}"'})


def _patched(current: dict[str, object], body: bytes) -> Task:
    try:
        patched = jsonpatch.apply_patch(current, json.loads(body))
    except (ValueError, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise MalformedInput(f"the JSON Patch cannot be applied: {exc}") from exc
    try:
        return Task.model_validate(patched)
    except ValidationError as exc:
        raise invalid(exc, "Task") from exc


async def _stored(request: Request, runtime: RuntimeDep, task_id: str) -> StoredTask:
    """The Task, if the caller's organisation is a party to its referral (Forbidden otherwise)."""
    stored = await runtime.status.tasks.get(task_id)
    if stored is None:
        raise NotFound(f"Task/{task_id} is not known here")
    referral = await runtime.store.get(stored.referral_id)
    if referral is not None:
        access.check_referral(principal_of(request), referral, f"Task/{task_id}")
    return stored
