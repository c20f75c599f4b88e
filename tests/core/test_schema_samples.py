"""Every FHIR resource kept in schemas/ round-trips through fhir.resources R4B: parse, dump, parse
again, compare (as fhir.resources' own tests do with the specification's examples)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def fhir_files() -> list[Path]:
    found = []
    for path in sorted(SCHEMAS.rglob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "resourceType" in data:
            found.append(path)
    return found


@pytest.mark.parametrize("path", fhir_files(), ids=lambda p: str(p.relative_to(SCHEMAS)))
def test_fhir_resource_in_schemas_round_trips(path: Path) -> None:
    data = json.loads(path.read_text())
    model = get_fhir_model_class(data["resourceType"])
    first = model.model_validate(data)
    again = model.model_validate_json(first.model_dump_json())
    assert again.model_dump() == first.model_dump()
    assert model.model_validate_xml(first.model_dump_xml()).model_dump() == first.model_dump()


def test_the_samples_are_found() -> None:
    assert len(fhir_files()) >= 2
