"""The demo receiver's FHIR endpoint: conditional create and update of ServiceRequests, BaRS
`$process-message`, and `/_demo/...` routes to read what arrived and to set how it behaves."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from gateway.demo_receiver.ledger import Behaviour, ReceivedReferrals

FHIR_JSON = "application/fhir+json"
REST, MESSAGING = "fhir-rest", "fhir-messaging"


def create_app(ledger: ReceivedReferrals) -> FastAPI:
    app = FastAPI(title="Demo receiver")

    @app.post("/fhir/ServiceRequest")
    async def create(request: Request) -> Response:
        identity = request.headers.get("if-none-exist", "").removeprefix("identifier=")
        return await _take(ledger, request, REST, identity, "new")

    @app.put("/fhir/ServiceRequest")
    async def conditional_update(request: Request) -> Response:
        sr = json.loads(await request.body())
        reason = "delete" if sr.get("status") == "revoked" else "update"
        return await _take(ledger, request, REST, request.query_params.get("identifier", ""), reason)

    @app.post("/fhir/$process-message")
    async def process_message(request: Request) -> Response:
        bundle = json.loads(await request.body())
        header, sr = bundle["entry"][0]["resource"], bundle["entry"][1]["resource"]
        reason = header["reason"]["coding"][0]["code"]
        return await _take(ledger, request, MESSAGING, _identity(sr), reason)

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


async def _take(ledger: ReceivedReferrals, request: Request, fmt: str, identity: str, reason: str) -> Response:
    request_id = request.headers.get("x-request-id")
    body = (await request.body()).decode()  # all of it arrived before the receiver starts working
    failure = await ledger.misbehave("http")
    if failure is not None:
        ledger.failed(fmt, identity, request_id, failure)
        return _outcome(int(failure), "exception", "the demo receiver was told to fail")
    if not identity:
        return _outcome(400, "required", "no identifier to keep the referral by")
    kept, outcome = ledger.keep(fmt, identity, request_id, reason, body)
    if fmt == MESSAGING and outcome == "duplicate":
        return _outcome(409, "duplicate", f"request {request_id} was processed before")
    status = 201 if outcome == "created" else 200
    resource_id = uuid.uuid5(uuid.NAMESPACE_URL, kept.identity)
    location = f"{request.base_url}fhir/ServiceRequest/{resource_id}/_history/{kept.version}"
    return Response(body, status, {"location": location}, media_type=FHIR_JSON)


def _identity(sr: dict[str, Any]) -> str:
    ident = (sr.get("identifier") or [{}])[0]
    return f"{ident.get('system', '')}|{ident.get('value', '')}" if ident.get("value") else ""


def _outcome(status: int, code: str, text: str) -> Response:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return JSONResponse(body, status, media_type=FHIR_JSON)
