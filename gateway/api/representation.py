"""FHIR responses in the format the client asked for: `_format`, else Accept, else JSON."""

from __future__ import annotations

import json
from typing import cast

from fastapi import Request, Response
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource

from adapters.inbound.fhir.parse import XML_TYPES

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"


def wants_xml(request: Request) -> bool:
    fmt = request.query_params.get("_format", "").lower()
    if fmt:
        return "xml" in fmt
    accept = request.headers.get("accept", "")
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return any(k in XML_TYPES for k in kinds) and not any(k.endswith("json") for k in kinds[:1])


def fhir_response(
    request: Request, resource: Resource | str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """`resource` may be a model or FHIR JSON already serialised (the stored form: no second dump)."""
    if wants_xml(request):
        model = resource if isinstance(resource, Resource) else _model(resource)
        return Response(model.model_dump_xml(), status, headers, media_type=f"{FHIR_XML}; charset=utf-8")
    body = resource if isinstance(resource, str) else resource.model_dump_json()
    return Response(body, status, headers, media_type=f"{FHIR_JSON}; charset=utf-8")


def _model(json_text: str) -> Resource:
    data = json.loads(json_text)
    model = cast(Resource, get_fhir_model_class(data["resourceType"]).model_validate(data))
    return model
