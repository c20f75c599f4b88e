"""The IAPT prescription pad over HTTP: the web form a physiotherapist uses in clinic (`/pad`), the
patient's self-referral (`/pad/self-referral`), the same as a JSON API (`POST /pad` with JSON), and
FHIR `POST /fhir/QuestionnaireResponse`. Every way in goes through adapters/inbound/pad and the intake.

The form is rendered on the server (no script): a rejected field comes back with what was typed and
the error beside it and in a summary at the top; success redirects to a confirmation that gives the
reference and where the referral went. A form carries a submission token, so sending it twice (a
double tap, a refresh) makes one referral. JSON and FHIR errors propagate as `GatewayError`s and the
app renders them as OperationOutcomes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from adapters.inbound.pad import inbound as pad_inbound
from adapters.inbound.pad import questionnaire
from adapters.inbound.pad.mapping import CHANNEL
from adapters.inbound.pad.rules import Variant
from gateway.api import pad_view, transaction
from gateway.api.deps import CorrelationDep, RuntimeDep
from gateway.api.links import base_url
from gateway.api.pad_receipt import Receipt, receipt
from gateway.api.representation import fhir_response
from gateway.canonical.referral import InboundReferral, stored_service_request
from gateway.errors import Issue, MalformedInput, NotFound, ReceiverError, SenderError, UnsupportedInput
from gateway.inbound_log.arrival import refused_here
from gateway.intake import Acceptance
from gateway.runtime import Runtime

log = logging.getLogger(__name__)

router = APIRouter(tags=["IAPT prescription pad"])
templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
STYLESHEET = Path(__file__).resolve().parent / "static" / "pad.css"
PATHS: dict[Variant, str] = {"physiotherapist": "/pad", "self": "/pad/self-referral"}
TOKEN_FIELD = "_submission"
RequestIdHeader = Annotated[str | None, Header()]


@router.get("/pad", response_class=HTMLResponse)
async def physiotherapist_form(request: Request, runtime: RuntimeDep) -> Response:
    return _page(request, runtime, "physiotherapist", {}, [])


@router.post("/pad")
async def physiotherapist_submit(
    request: Request, runtime: RuntimeDep, correlation: CorrelationDep, x_request_id: RequestIdHeader = None
) -> Response:
    return await _submit(request, runtime, "physiotherapist", correlation, x_request_id)


@router.get("/pad/self-referral", response_class=HTMLResponse)
async def self_referral_form(request: Request, runtime: RuntimeDep) -> Response:
    return _page(request, runtime, "self", {}, [])


@router.post("/pad/self-referral")
async def self_referral_submit(
    request: Request, runtime: RuntimeDep, correlation: CorrelationDep, x_request_id: RequestIdHeader = None
) -> Response:
    return await _submit(request, runtime, "self", correlation, x_request_id)


@router.get("/pad/sent/{referral_id}", response_class=HTMLResponse, name="pad_sent")
async def sent(request: Request, runtime: RuntimeDep, referral_id: str, repeat: bool = False) -> Response:
    stored = await runtime.store.get(referral_id)
    if stored is None or stored.channel != CHANNEL:
        raise NotFound(f"no pad referral {referral_id} is known here")
    shown = receipt(stored_service_request(stored.resource), stored.topic, stored.rule, runtime.settings.pad)
    context = {"receipt": shown, "repeat": repeat, "again": PATHS[shown.variant], "title": "Referral sent"}
    return templates.TemplateResponse(request, "pad/sent.html", context)


@router.get("/pad/static/pad.css", include_in_schema=False)
async def stylesheet() -> Response:
    return FileResponse(STYLESHEET, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@router.post("/fhir/QuestionnaireResponse", tags=["FHIR R4"])
async def create_questionnaire_response(
    request: Request, runtime: RuntimeDep, correlation: CorrelationDep, x_request_id: RequestIdHeader = None
) -> Response:
    """A QuestionnaireResponse answering the pad becomes a referral; the answer is the ServiceRequest
    made from it (which contains the response)."""
    body = await request.body()
    inbound = pad_inbound.from_questionnaire_response(
        body,
        request.headers.get("content-type"),
        settings=runtime.settings.pad,
        schemas_dir=runtime.settings.schemas_dir,
        correlation_id=correlation,
        message_id=x_request_id,
    )
    acceptance = await runtime.intake.take(_fingerprinted(inbound, request, body))
    return fhir_response(
        request, acceptance.resource, 201 if acceptance.created else 200, _location(request, acceptance)
    )


@router.get("/fhir/Questionnaire/iapt-prescription-pad", tags=["FHIR R4"])
async def read_questionnaire(request: Request, runtime: RuntimeDep) -> Response:
    return fhir_response(request, questionnaire.load(runtime.settings.schemas_dir).questionnaire)


async def _submit(
    request: Request, runtime: Runtime, variant: Variant, correlation: str, request_id: str | None
) -> Response:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media.endswith("json"):
        return await _submit_json(request, runtime, variant, correlation, request_id)
    if media in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        return await _submit_form(request, runtime, variant, correlation)
    raise UnsupportedInput(f"'{media or 'no content type'}' is not taken here: send a form or application/json")


async def _submit_json(
    request: Request, runtime: Runtime, variant: Variant, correlation: str, request_id: str | None
) -> Response:
    body = await request.body()
    values = _json_object(body)
    inbound = _from_fields(runtime, values, variant, web_form=False, correlation=correlation, message_id=request_id)
    acceptance = await runtime.intake.take(_fingerprinted(inbound, request, body))
    shown = receipt(acceptance.service_request, acceptance.topic, acceptance.rule, runtime.settings.pad)
    return JSONResponse(
        _receipt_json(shown, acceptance, request), 201 if acceptance.created else 200, _location(request, acceptance)
    )


def _fingerprinted(inbound: InboundReferral, request: Request, body: bytes) -> InboundReferral:
    """With an X-Request-Id, the message's fingerprint, so a retry is told from a reused id."""
    if not inbound.message_id:
        return inbound
    return dataclasses.replace(inbound, message_digest=transaction.fingerprint(request, body))


async def _submit_form(request: Request, runtime: Runtime, variant: Variant, correlation: str) -> Response:
    form = await request.form()
    token = str(form.get(TOKEN_FIELD) or uuid.uuid4())
    values = _form_values(form)
    try:
        inbound = _from_fields(runtime, values, variant, web_form=True, correlation=correlation, message_id=token)
        acceptance = await runtime.intake.accept(inbound)
    except SenderError as exc:
        refused_here(exc)
        return _page(request, runtime, variant, values, exc.issues, exc.message, token, 422)
    except ReceiverError as exc:
        refused_here(exc)
        log.warning("pad referral not accepted (%s): %s", type(exc).__name__, exc.message)
        unsent = "The referral could not be sent just now and nothing was sent. Please try again in a minute."
        return _page(request, runtime, variant, values, [Issue(unsent)], unsent, token, exc.http_status)
    target = request.url_for("pad_sent", referral_id=acceptance.referral_id)
    return RedirectResponse(f"{target.path}{'' if acceptance.created else '?repeat=true'}", status_code=303)


def _from_fields(
    runtime: Runtime,
    values: dict[str, Any],
    variant: Variant,
    *,
    web_form: bool,
    correlation: str,
    message_id: str | None,
) -> InboundReferral:
    return pad_inbound.from_fields(
        values,
        variant,
        web_form=web_form,
        settings=runtime.settings.pad,
        schemas_dir=runtime.settings.schemas_dir,
        correlation_id=correlation,
        message_id=message_id,
    )


def _page(
    request: Request,
    runtime: Runtime,
    variant: Variant,
    values: dict[str, Any],
    issues: tuple[Issue, ...] | list[Issue],
    message: str | None = None,
    token: str | None = None,
    status: int = 200,
) -> Response:
    pad = questionnaire.load(runtime.settings.schemas_dir)
    context = {
        "variant": variant,
        "action": PATHS[variant],
        "token_field": TOKEN_FIELD,
        "token": token or str(uuid.uuid4()),
        "sections": pad_view.sections(pad, variant, values, issues),
        "summary": pad_view.error_summary(pad, variant, issues),
        "message": pad_view.sentence(message) if message else None,
        "service_name": runtime.settings.pad.iapt_service_name,
        "title": "Refer to NHS Talking Therapies"
        if variant == "physiotherapist"
        else "Refer yourself to NHS Talking Therapies",
    }
    if issues:
        context["title"] = f"Error: {context['title']}"
    return templates.TemplateResponse(request, "pad/form.html", context, status_code=status)


def _form_values(form: FormData) -> dict[str, Any]:
    """Form fields by name; a field posted more than once (ticked checkboxes) becomes a list."""
    values: dict[str, Any] = {}
    for key in dict.fromkeys(form.keys()):
        if key.startswith("_"):
            continue
        posted = [v for v in form.getlist(key) if isinstance(v, str)]
        values[key] = posted if len(posted) > 1 else (posted[0] if posted else None)
    return values


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedInput(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedInput(
            "the body must be a JSON object whose keys are the pad's linkIds", Issue("not an object", "$")
        )
    return data


def _location(request: Request, acceptance: Acceptance) -> dict[str, str]:
    where = f"{base_url(request)}/ServiceRequest/{acceptance.referral_id}"
    return {"Location": f"{where}/_history/{acceptance.version}", "ETag": f'W/"{acceptance.version}"'}


def _receipt_json(shown: Receipt, acceptance: Acceptance, request: Request) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reference": shown.reference,
        "referralId": acceptance.referral_id,
        "created": acceptance.created,
        "priority": shown.priority,
        "service": {"ods": shown.service_ods, "name": shown.service_name},
        "topic": shown.topic,
        "rule": shown.rule,
        "sourceOfReferral": {"snomed": shown.source_snomed, "iapt": shown.source_iapt},
        "serviceRequest": f"{base_url(request)}/ServiceRequest/{acceptance.referral_id}",
    }
    if shown.urgent:
        body["whatToDoNow"] = list(shown.crisis_steps)
    return body
