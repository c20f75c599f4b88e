"""Liberal in what is read, strict in what it means: XML comments, processing instructions and
whitespace anywhere; known system URI variants read as the canonical URI, each with a warning;
patients without an NHS number taken when name, birth date and postcode say who they are."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from adapters.inbound.fhir import messaging
from adapters.inbound.fhir.parse import parse_with_warnings
from gateway.canonical import patient, referral, systems, ukcore, uris
from gateway.errors import InvalidReferral
from tests.samples import entry, practitioner_bundle

XML = "application/fhir+xml"
JSON = "application/fhir+json"


def commented_xml(bundle: dict[str, object]) -> bytes:
    """The Bundle as FHIR XML the way real files come: a declaration, a comment and a processing
    instruction before the root, comments and blank lines inside it, whitespace around it."""
    xml = Bundle.model_validate(bundle).model_dump_xml().decode()
    body = xml.split("?>", 1)[1].strip()
    body = body.replace(
        '<Bundle xmlns="http://hl7.org/fhir">', '<Bundle xmlns="http://hl7.org/fhir">\n  <!-- a BaRS referral -->\n', 1
    )
    body = body.replace("<entry>", "<entry><!-- the next entry -->\n\n", 2)
    body = body.replace("<identifier>", "<identifier><?editor keep?>", 1)
    before = '\n  <?xml version="1.0" encoding="UTF-8"?>\n<!-- exported by a GP system -->\n'
    before += '<?xml-stylesheet href="x.xsl"?>\n'
    return f"{before}{body}\n\n".encode()


def test_xml_with_comments_before_and_inside_the_root_is_read_as_the_json_is() -> None:
    bundle = practitioner_bundle()
    body = commented_xml(bundle)
    assert body.count(b"<!-- the next entry -->") == 2 and b"<?editor keep?>" in body
    from_xml = messaging.from_bundle(body, XML, "r", "c")
    from_json = messaging.from_bundle(json.dumps(bundle).encode(), JSON, "r", "c")
    assert from_xml.service_request.model_dump() == from_json.service_request.model_dump()
    assert from_xml.warnings == ()


def test_a_lower_case_id_in_the_ods_system_is_read_as_the_canonical_uri_with_a_warning() -> None:
    bundle = practitioner_bundle()
    entry(bundle, "Organization")["identifier"][0]["system"] = "https://fhir.nhs.uk/id/ods-organization-code"
    inbound = messaging.from_bundle(json.dumps(bundle).encode(), JSON, "r", "c")
    assert referral.requester_ods(inbound.service_request) == "A81002"
    (warning,) = inbound.warnings
    assert (warning.severity, warning.expression) == ("warning", "Bundle.entry[5].resource.identifier[0].system")
    assert "https://fhir.nhs.uk/id/ods-organization-code" in warning.diagnostics


def test_system_variants_in_xml_are_warned_about_at_their_fhirpath_too() -> None:
    bundle = practitioner_bundle()
    entry(bundle, "Patient")["identifier"][0]["system"] = "HTTP://fhir.nhs.uk/Id/nhs-number/"
    inbound = messaging.from_bundle(commented_xml(bundle), XML, "r", "c")
    assert referral.nhs_number(inbound.service_request) == entry(bundle, "Patient")["identifier"][0]["value"]
    assert [w.expression for w in inbound.warnings] == ["Bundle.entry[2].resource.identifier[0].system"]


@pytest.mark.parametrize(
    "variant",
    ["http://snomed.info/sct", "https://snomed.info/sct", "HTTP://SNOMED.INFO/SCT/"],
)
def test_each_variant_reads_as_the_one_canonical_system(variant: str) -> None:
    assert uris.canonical(variant) == systems.SNOMED_CT


def test_an_unknown_system_is_left_as_it_is_and_not_warned_about() -> None:
    data = {"identifier": [{"system": "https://example.org/mrn", "value": "1"}]}
    assert uris.normalise(data, "Patient") == []
    assert data["identifier"][0]["system"] == "https://example.org/mrn"


def test_malformed_xml_is_still_refused() -> None:
    with pytest.raises(Exception, match="not well-formed"):
        parse_with_warnings(b"<!-- x --><Bundle xmlns='http://hl7.org/fhir'>", XML)


# -- patients without an NHS number ------------------------------------------------------------


def untraced_bundle() -> dict[str, object]:
    bundle = practitioner_bundle()
    entry(bundle, "Patient")["identifier"] = [{"system": "https://example.org/111-case", "value": "C-1"}]
    return bundle


def test_a_patient_without_an_nhs_number_is_taken_by_name_birth_date_and_postcode() -> None:
    inbound = messaging.from_bundle(json.dumps(untraced_bundle()).encode(), JSON, "r", "c")
    sr = inbound.service_request
    assert referral.nhs_number(sr) is None and patient.is_untraced(sr)
    assert ukcore.issues(sr) == []
    assert [t.code for t in sr.meta.tag] == [systems.FLAG_NHS_NUMBER_TO_BE_TRACED[0]]
    (contained,) = [c for c in sr.contained or [] if c.get_resource_type() == "Patient"]
    nhs = next(i for i in contained.identifier if i.system == systems.NHS_NUMBER)
    assert nhs.value is None
    status = nhs.extension[0]
    assert status.url == systems.EXT_NHS_NUMBER_VERIFICATION
    assert status.valueCodeableConcept.coding[0].code == systems.TRACE_REQUIRED[0]
    assert contained.address[0].postalCode == "LS1 4AP"
    assert "to be traced" in inbound.resolved["subject"]


@pytest.mark.parametrize(
    ("drop", "missing"), [("birthDate", "birth date"), ("address", "postcode or address"), ("name", "name")]
)
def test_without_an_nhs_number_each_missing_demographic_is_named(drop: str, missing: str) -> None:
    bundle = untraced_bundle()
    del entry(bundle, "Patient")[drop]
    with pytest.raises(InvalidReferral) as caught:
        messaging.from_bundle(json.dumps(bundle).encode(), JSON, "r", "c")
    (issue,) = caught.value.issues
    assert issue.expression == "ServiceRequest.subject" and missing in issue.diagnostics


def test_a_given_nhs_number_is_still_checked_for_its_check_digit() -> None:
    bundle = practitioner_bundle()
    entry(bundle, "Patient")["identifier"][0]["value"] = "9434765918"
    with pytest.raises(InvalidReferral) as caught:
        messaging.from_bundle(json.dumps(bundle).encode(), JSON, "r", "c")
    assert [i.expression for i in caught.value.issues] == ["ServiceRequest.subject.identifier.value"]


@pytest.mark.parametrize(
    "referral_id", ["6f1c7c1e-6a43-5c55-9a0b-5a3f0c0b7e21", "00000000-0000-5000-8000-000000000000"]
)
def test_the_untraced_key_is_stable_and_can_never_be_an_nhs_number(referral_id: str) -> None:
    key = patient.untraced_key(referral_id)
    assert key == patient.untraced_key(referral_id) and len(key) == 16
    assert key.startswith("U") and not key.isdigit()
