"""Bytes to a fhir.resources R4B model, in JSON or XML, with errors that name the failing element.

Pydantic's error locations become FHIRPath-like expressions (`ServiceRequest.subject.identifier`),
so a 422 tells the sender exactly which element to fix.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, cast

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from lxml import etree
from pydantic import ValidationError

from gateway.errors import InvalidReferral, Issue, MalformedInput, UnsupportedInput

R = TypeVar("R", bound=Resource)

JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
XML_TYPES = {"application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir"}
_FHIR_NS = "{http://hl7.org/fhir}"


def media_type(content_type: str | None) -> str:
    return (content_type or "application/fhir+json").split(";")[0].strip().lower()


def parse(body: bytes, content_type: str | None, expected: type[R] | None = None) -> R | Resource:
    """Parse a FHIR resource; `expected` (a model class) refuses any other resource type."""
    kind = media_type(content_type)
    if kind in JSON_TYPES:
        resource_type, load = _json(body)
    elif kind in XML_TYPES:
        resource_type, load = _xml(body)
    else:
        raise UnsupportedInput(f"'{kind}' is not a FHIR format; send application/fhir+json or application/fhir+xml")
    if expected is not None and resource_type != expected.get_resource_type():
        raise MalformedInput(
            f"expected a {expected.get_resource_type()} resource, got {resource_type}",
            Issue(f"resourceType must be {expected.get_resource_type()}", "resourceType"),
        )
    model = _model_class(resource_type)
    try:
        resource: Resource = load(model)
        return resource
    except ValidationError as exc:
        raise invalid(exc, resource_type) from exc


def _json(body: bytes) -> tuple[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedInput(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise MalformedInput(
            "a FHIR resource is a JSON object with a resourceType", Issue("resourceType is missing", "resourceType")
        )
    return data["resourceType"], lambda model: model.model_validate(data)


def _xml(body: bytes) -> tuple[str, Any]:
    try:
        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise MalformedInput(f"the body is not well-formed XML: {exc}") from exc
    tag = str(root.tag)
    if not tag.startswith(_FHIR_NS):
        raise MalformedInput("the root element is not in the FHIR namespace http://hl7.org/fhir")
    return tag[len(_FHIR_NS) :], lambda model: model.model_validate_xml(body)


def _model_class(resource_type: str) -> type[Resource]:
    try:
        return cast(type[Resource], get_fhir_model_class(resource_type))
    except (KeyError, ValueError) as exc:
        raise MalformedInput(
            f"'{resource_type}' is not a FHIR R4 resource type",
            Issue(f"unknown resourceType {resource_type}", "resourceType"),
        ) from exc


def invalid(exc: ValidationError, resource_type: str) -> InvalidReferral:
    """Translate pydantic's errors into issues with FHIRPath expressions."""
    issues = [Issue(_message(err), _path(resource_type, err["loc"]), _issue_code(err["type"])) for err in exc.errors()]
    return InvalidReferral(f"the {resource_type} is not valid FHIR R4", *issues)


def _path(resource_type: str, loc: tuple[int | str, ...]) -> str:
    path = resource_type
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{str(part).removesuffix('__ext')}"
    return path


def _message(err: Any) -> str:
    msg = str(err.get("msg", "invalid"))
    return "unknown element (not in FHIR R4)" if err.get("type") == "extra_forbidden" else msg


def _issue_code(kind: str) -> str:
    return {"missing": "required", "extra_forbidden": "structure"}.get(kind, "value")
