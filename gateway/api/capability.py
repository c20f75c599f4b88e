"""The CapabilityStatement at /fhir/metadata: what this server does, stated in FHIR."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from adapters.inbound.fhir import definitions
from gateway import __version__
from gateway.api import search
from gateway.canonical import systems
from gateway.settings import Settings

TOKEN = "token"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def statement(settings: Settings) -> CapabilityStatement:
    base = settings.api.public_url
    return CapabilityStatement.model_validate(
        {
            "status": "active",
            "date": datetime.now(UTC).date().isoformat(),
            "kind": "instance",
            "software": {"name": "Referral Gateway", "version": __version__},
            "implementation": {"description": "Referral Gateway FHIR R4 API", "url": f"{base}/fhir"},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "application/fhir+xml"],
            "rest": [
                {
                    "mode": "server",
                    "security": _security(base),
                    "resource": _resources(),
                    "operation": [
                        {
                            "name": "process-message",
                            "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
                        }
                    ],
                }
            ],
            "messaging": [
                {
                    "documentation": "BaRS messages to $process-message; GET /fhir/MessageDefinition describes each.",
                    "supportedMessage": [
                        {"mode": "receiver", "definition": d.url} for d in definitions.load(settings.schemas_dir)
                    ],
                }
            ],
        }
    )


def _security(base: str) -> dict[str, Any]:
    """OAuth2 client credentials at the gateway's own token endpoint (SMART-style system scopes)."""
    return {
        "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "OAuth"}]}],
        "description": "Bearer tokens from the token endpoint (client credentials), scopes such as "
        "system/ServiceRequest.write, system/Task.write, system/*.read.",
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "token", "valueUri": f"{base}/oauth2/token"}],
            }
        ],
    }


def _resources() -> list[dict[str, Any]]:
    return [
        _resource(
            "ServiceRequest",
            ("create", "read", "vread", "update", "search-type"),
            (*search.SERVICE_REQUEST, search.TAG),
            versioning="versioned-update",
            conditionalCreate=True,
        ),
        _resource("Task", ("read", "update", "patch", "history-instance", "search-type"), tuple(search.TASK)),
        _resource("AuditEvent", ("read", "search-type"), search.AUDIT_EVENT),
        _resource("MessageDefinition", ("read", "search-type"), search.MESSAGE_DEFINITION),
        _resource("QuestionnaireResponse", ("create",), ()),
        _resource("Questionnaire", ("read",), ()),
    ]


def _resource(kind: str, interactions: tuple[str, ...], search: tuple[str, ...], **more: Any) -> dict[str, Any]:
    params = [{"name": n, "type": "date" if n == "date" else TOKEN, **_documented(n)} for n in search]
    return {
        "type": kind,
        "interaction": [{"code": c} for c in interactions],
        **({"searchParam": params} if params else {}),
        **more,
    }


def _documented(param: str) -> dict[str, str]:
    if param == search.TAG:
        flag = systems.FLAG_NHS_NUMBER_TO_BE_TRACED[0]
        return {"documentation": f"{search.TAG}={flag}: the referrals whose patient has no NHS number yet"}
    return {}
