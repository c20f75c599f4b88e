"""Bytes to a fhir.resources R4B model, in JSON or XML, with errors that name the failing element.

Pydantic's error locations become FHIRPath-like expressions (`ServiceRequest.subject.identifier`),
so a 422 tells the sender exactly which element to fix, every element at once.

Liberal in what it reads: XML comments, processing instructions and whitespace are dropped wherever
they are (before the root too), and variants of known system URIs are read as the canonical URI
(gateway/canonical/uris.py), each reported back as a warning. Strict in what it means: anything
else that is not FHIR R4 is refused.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, cast

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from lxml import etree
from pydantic import ValidationError

from gateway.canonical import uris
from gateway.errors import InvalidReferral, Issue, MalformedInput, UnsupportedInput

R = TypeVar("R", bound=Resource)

JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
XML_TYPES = {"application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir"}
_FHIR_NS = "{http://hl7.org/fhir}"


def media_type(content_type: str | None) -> str:
    return (content_type or "application/fhir+json").split(";")[0].strip().lower()


def parse(body: bytes, content_type: str | None, expected: type[R] | None = None) -> R | Resource:
    """Parse a FHIR resource; `expected` (a model class) refuses any other resource type."""
    return parse_with_warnings(body, content_type, expected)[0]


def parse_with_warnings(
    body: bytes, content_type: str | None, expected: type[R] | None = None
) -> tuple[R | Resource, list[Issue]]:
    """As `parse`, with the warnings about what was read leniently (system URI variants)."""
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
        resource, warnings = load(model)
    except ValidationError as exc:
        raise invalid(exc, resource_type) from exc
    return resource, warnings


def _json(body: bytes) -> tuple[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedInput(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise MalformedInput(
            "a FHIR resource is a JSON object with a resourceType", Issue("resourceType is missing", "resourceType")
        )
    resource_type = data["resourceType"]

    def load(model: type[Resource]) -> tuple[Resource, list[Issue]]:
        warnings = uris.normalise(data, resource_type)
        return model.model_validate(data), warnings

    return resource_type, load


def _xml(body: bytes) -> tuple[str, Any]:
    """The XML without comments and processing instructions (fhir.resources reads a comment as an
    element); read as a model, then its JSON checked for system URI variants like any JSON body."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True, remove_blank_text=True
    )
    try:
        root = etree.fromstring(body.strip(), parser=parser)
    except etree.XMLSyntaxError as exc:
        raise MalformedInput(f"the body is not well-formed XML: {exc}") from exc
    tag = str(root.tag)
    if not tag.startswith(_FHIR_NS):
        raise MalformedInput("the root element is not in the FHIR namespace http://hl7.org/fhir")
    resource_type = tag[len(_FHIR_NS) :]
    clean = etree.tostring(root)

    def load(model: type[Resource]) -> tuple[Resource, list[Issue]]:
        resource = model.model_validate_xml(clean)
        data = resource.model_dump(mode="json")
        warnings = uris.normalise(data, resource_type)
        return (model.model_validate(data) if warnings else resource), warnings

    return resource_type, load


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


def summary(what: str, issues: list[Issue]) -> str:
    """One line for a refusal with many issues: what, the first reason, and how many more."""
    if not issues:
        return what
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{what}: {issues[0].diagnostics}{more}"
