"""The CapabilityStatement at /fhir/metadata: what this server does, stated in FHIR."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from gateway import __version__
from gateway.settings import Settings


def statement(settings: Settings) -> CapabilityStatement:
    search = [{"name": n, "type": "token"} for n in ("identifier", "patient", "requester", "performer", "status")]
    return CapabilityStatement.model_validate(
        {
            "status": "active",
            "date": datetime.now(UTC).date().isoformat(),
            "kind": "instance",
            "software": {"name": "Referral Gateway", "version": __version__},
            "implementation": {"description": "Referral Gateway FHIR R4 API", "url": f"{settings.api.public_url}/fhir"},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "application/fhir+xml"],
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": "ServiceRequest",
                            "interaction": [{"code": c} for c in ("create", "read", "vread", "update", "search-type")],
                            "versioning": "versioned-update",
                            "conditionalCreate": True,
                            "searchParam": search,
                        }
                    ],
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
                    "supportedMessage": [
                        {
                            "mode": "receiver",
                            "definition": "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral",
                        }
                    ]
                }
            ],
        }
    )
