"""Sample referrals from schemas/samples, each made unique so tests sharing a broker never collide."""

from __future__ import annotations

import copy
import json
import random
import uuid
from pathlib import Path
from typing import Any

from gateway.canonical import nhs_number

SAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "samples"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def valid_nhs_number(rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    while True:
        first = "".join(str(rng.randint(0, 9)) for _ in range(9))
        digit = nhs_number.check_digit(first)
        if digit is not None:
            return f"{first}{digit}"


def service_request(**changes: Any) -> dict[str, Any]:
    """The MSK-pain sample with a fresh UBRN and NHS number; `changes` replace top-level elements."""
    sr = load("fhir/servicerequest-msk-pain.json")
    sr["identifier"][0]["value"] = uuid.uuid4().hex[:12]
    sr["subject"]["identifier"]["value"] = valid_nhs_number()
    sr.update(copy.deepcopy(changes))
    return sr


def bars_bundle(reason: str = "new", ubrn: str | None = None) -> dict[str, Any]:
    bundle = load("fhir/bars-message-iapt-referral.json")
    bundle["entry"][0]["resource"]["reason"]["coding"][0]["code"] = reason
    bundle["entry"][1]["resource"]["identifier"][0]["value"] = ubrn or uuid.uuid4().hex[:12]
    bundle["entry"][2]["resource"]["identifier"][0]["value"] = valid_nhs_number()
    return bundle


def entry(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    )
    return found


def practitioner_bundle(reason: str = "new", ubrn: str | None = None) -> dict[str, Any]:
    """The BaRS message from a GP (a Practitioner, their PractitionerRole in the Bundle) to a service
    named by its DoS id (a HealthcareService providedBy an Organization), made unique."""
    bundle = load("fhir/bars-message-practitioner-to-dos-service.json")
    bundle["entry"][0]["resource"]["reason"]["coding"][0]["code"] = reason
    entry(bundle, "ServiceRequest")["identifier"][0]["value"] = ubrn or uuid.uuid4().hex[:12]
    entry(bundle, "Patient")["identifier"][0]["value"] = valid_nhs_number()
    return bundle


def full_url(bundle: dict[str, Any], resource_type: str) -> str:
    found: str = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type)
    return found
