"""The demo receiver's FHIR endpoint: conditional create and update of ServiceRequests, BaRS
`$process-message`, and `/_demo/...` routes to read what arrived and to set how it behaves. As a
referrer it also takes the status coming back: a conditional PUT of the Task, or a BaRS response
message carrying it."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from gateway.canonical import systems
from gateway.demo_receiver.ledger import Behaviour, ReceivedReferrals

FHIR_JSON = "application/fhir+json"
REST, MESSAGING = "fhir-rest", "fhir-messaging"


def create_app(ledger: ReceivedReferrals) -> FastAPI:
    app = FastAPI(title="Demo receiver")

    @app.post("/fhir/ServiceRequest")
    async def create(request: Request) -> Response:
        identity = request.headers.get("if-none-exist", "").removeprefix("identifier=")
        body = json.loads(await request.body())
        return await _take(ledger, request, REST, identity, "new", _ours(body))

    @app.put("/fhir/ServiceRequest")
    async def conditional_update(request: Request) -> Response:
        sr = json.loads(await request.body())
        reason = "delete" if sr.get("status") == "revoked" else "update"
        return await _take(ledger, request, REST, request.query_params.get("identifier", ""), reason)

    @app.post("/fhir/$process-message")
    async def process_message(request: Request) -> Response:
        bundle = json.loads(await request.body())
        header, focus = bundle["entry"][0]["resource"], bundle["entry"][1]["resource"]
        if focus.get("resourceType") == "Task":
            return _status(ledger, MESSAGING, focus)
        reason = header["reason"]["coding"][0]["code"]
        referral_id = _ours(focus) or focus.get("id")  # a message keeps the gateway's id as the resource id
        return await _take(ledger, request, MESSAGING, _identity(focus), reason, referral_id)

    @app.put("/fhir/Task")
    async def task_update(request: Request) -> Response:
        return _status(ledger, REST, json.loads(await request.body()))

    @app.get("/_demo/statuses")
    async def statuses() -> list[dict[str, Any]]:
        return [asdict(s) for s in ledger.statuses]

    @app.get("/_demo/received")
    async def received() -> list[dict[str, Any]]:
        return [asdict(r) for r in ledger.referrals.values()]

    @app.get("/_demo/requests")
    async def requests() -> list[dict[str, Any]]:
        return [asdict(h) for h in ledger.hits]

    @app.put("/_demo/behaviour")
    async def behave(behaviour: Behaviour) -> dict[str, Any]:
        ledger.behaviour = behaviour
        return asdict(behaviour)

    return app


async def _take(
    ledger: ReceivedReferrals, request: Request, fmt: str, identity: str, reason: str, referral_id: str | None = None
) -> Response:
    request_id = request.headers.get("x-request-id")
    body = (await request.body()).decode()  # all of it arrived before the receiver starts working
    failure = await ledger.misbehave("http")
    if failure is not None:
        ledger.failed(fmt, identity, request_id, failure)
        return _outcome(int(failure), "exception", "the demo receiver was told to fail")
    if not identity:
        return _outcome(400, "required", "no identifier to keep the referral by")
    kept, outcome = ledger.keep(fmt, identity, request_id, reason, body, referral_id)
    if fmt == MESSAGING and outcome == "duplicate":
        return _outcome(409, "duplicate", f"request {request_id} was processed before")
    status = 201 if outcome == "created" else 200
    resource_id = uuid.uuid5(uuid.NAMESPACE_URL, kept.identity)
    location = f"{request.base_url}fhir/ServiceRequest/{resource_id}/_history/{kept.version}"
    return Response(body, status, {"location": location}, media_type=FHIR_JSON)


def _status(ledger: ReceivedReferrals, fmt: str, task: dict[str, Any]) -> Response:
    text = (task.get("statusReason") or task.get("businessStatus") or {}).get("text")
    ledger.heard(fmt, _identity(task), str(task.get("status")), text)
    return Response(json.dumps(task), 200, media_type=FHIR_JSON)


def _ours(sr: dict[str, Any]) -> str | None:
    """The gateway's referral id, which it sends as an identifier."""
    return next((i.get("value") for i in sr.get("identifier") or [] if i.get("system") == systems.REFERRAL_ID), None)


def _identity(sr: dict[str, Any]) -> str:
    ident = (sr.get("identifier") or [{}])[0]
    return f"{ident.get('system', '')}|{ident.get('value', '')}" if ident.get("value") else ""


def _outcome(status: int, code: str, text: str) -> Response:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return JSONResponse(body, status, media_type=FHIR_JSON)
