"""`GET /fhir/MessageDefinition`: the BaRS messages this gateway takes and the resources each must
carry, searched by `context` (the use case: `msk-pain`, `iapt`, `physiotherapy`, or `system|code`),
`event`, `url`, `name` and `status`; `GET /fhir/MessageDefinition/{id}` reads one.

As BaRS has it, a `context` that matches nothing is a 404 (REC_NOT_FOUND), not an empty page, and
transaction ids sent with a search are GUIDs (400 REC_BAD_REQUEST otherwise). No patient data: the
definitions are the deployment's configuration (schemas/messaging).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleLink

from adapters.inbound.fhir import definitions
from gateway.api import search, transaction
from gateway.api.deps import RuntimeDep
from gateway.api.links import base_url
from gateway.api.representation import fhir_response
from gateway.errors import Issue, NotFound

router = APIRouter(prefix="/fhir", tags=["FHIR R4"])


@router.get("/MessageDefinition")
async def search_message_definitions(request: Request, runtime: RuntimeDep) -> Response:
    transaction.check_ids(request)
    criteria = search.parameters(request, search.MESSAGE_DEFINITION)
    found = definitions.search(definitions.load(runtime.settings.schemas_dir), criteria)
    context = [value for name, value in criteria if name == "context"]
    if context and not found:
        raise NotFound(
            f"no message is defined here for the context {', '.join(context)}",
            Issue(f"use cases here: {', '.join(sorted(_use_cases(runtime)))}", "context", "not-found"),
        )
    entries = [
        BundleEntry.model_validate(
            {"fullUrl": f"{base_url(request)}/MessageDefinition/{d.id}", "resource": d, "search": {"mode": "match"}}
        )
        for d in found
    ]
    bundle = Bundle(
        type="searchset",
        total=len(entries),
        entry=entries or None,
        link=[BundleLink(relation="self", url=str(request.url))],
    )
    return fhir_response(request, bundle)


@router.get("/MessageDefinition/{definition_id}")
async def read_message_definition(request: Request, runtime: RuntimeDep, definition_id: str) -> Response:
    for definition in definitions.load(runtime.settings.schemas_dir):
        if definition.id == definition_id:
            return fhir_response(request, definition)
    raise NotFound(f"MessageDefinition/{definition_id} is not defined here")


def _use_cases(runtime: RuntimeDep) -> set[str]:
    return {c for d in definitions.load(runtime.settings.schemas_dir) for c in definitions.contexts(d) if "|" not in c}
