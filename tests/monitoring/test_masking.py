"""Masking: what integration engineers see carries no NHS number, name or birth date."""

from __future__ import annotations

import json

from gateway.observability.masking import mask, mask_key, scrub_text

NHS = "9434765919"


def test_a_patient_resource_loses_its_name_identifier_and_birth_date() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Smith", "given": ["Jane"]}],
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
        "birthDate": "1980-01-01",
    }
    shown = json.dumps(mask(patient))
    assert NHS not in shown and "Smith" not in shown and "1980-01-01" not in shown
    assert patient["name"] == [{"family": "Smith", "given": ["Jane"]}], "the original is left alone"


def test_nhs_numbers_in_text_and_record_keys_are_masked() -> None:
    assert NHS not in scrub_text(f"delivery failed for {NHS}")
    assert NHS not in mask_key(NHS)
