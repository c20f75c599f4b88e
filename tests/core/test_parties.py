"""Resolving the parties of the shapes NHS systems send: each requester and performer form, the
individual and the service kept, disagreements refused, every problem reported at once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.inbound.fhir import messaging, rest, targets
from gateway.canonical import referral, systems
from gateway.canonical.referral import InboundReferral
from gateway.errors import InvalidReferral, MalformedInput
from gateway.routing import load_directory
from tests.routing.test_router import SCHEMAS
from tests.samples import bars_bundle, entry, full_url, practitioner_bundle, service_request

JSON = "application/fhir+json"
DIRECTORY = load_directory(SCHEMAS)
DOS = systems.DOS_SERVICE_ID


def take(bundle: dict[str, Any], target: str | None = None) -> InboundReferral:
    body = json.dumps(bundle).encode()
    return messaging.from_bundle(body, JSON, "req-1", "corr-1", target, DIRECTORY.service_owner)


def refused(bundle: dict[str, Any], target: str | None = None) -> InvalidReferral:
    with pytest.raises(InvalidReferral) as caught:
        take(bundle, target)
    return caught.value


def contained(inbound: InboundReferral, local_id: str) -> dict[str, Any]:
    data = inbound.service_request.model_dump(mode="json", exclude_none=True)
    found: dict[str, Any] = next(c for c in data["contained"] if c["id"] == local_id)
    return found


def remove(bundle: dict[str, Any], resource_type: str) -> None:
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != resource_type]


# -- the requester -----------------------------------------------------------------------------


def test_a_practitioner_requester_takes_the_organisation_of_their_role_in_the_bundle() -> None:
    inbound = take(practitioner_bundle())
    assert referral.requester_ods(inbound.service_request) == "A81002"
    assert inbound.resolved["requester"].startswith("A81002: a PractitionerRole in the Bundle for the Practitioner")


def test_the_requesting_practitioner_and_role_travel_contained_with_their_identifiers() -> None:
    inbound = take(practitioner_bundle())
    sr = inbound.service_request
    (ext,) = [e for e in sr.extension or [] if e.url == systems.EXT_REQUESTING_PRACTITIONER]
    role = contained(inbound, ext.valueReference.reference.removeprefix("#"))
    assert role["code"][0]["coding"][0]["code"] == "62247001"
    assert role["organization"]["identifier"]["value"] == "A81002"
    practitioner = contained(inbound, role["practitioner"]["reference"].removeprefix("#"))
    assert {i["system"]: i["value"] for i in practitioner["identifier"]} == {
        systems.SDS_USER_ID: "555086689106",
        systems.GMC_NUMBER: "C1234567",
    }
    assert "sds-user-id 555086689106" in inbound.resolved["requester"]


def test_a_practitioner_role_requester_gives_its_organization() -> None:
    inbound = take(bars_bundle())  # the older sample: requester → PractitionerRole → Organization
    assert referral.requester_ods(inbound.service_request) == "A81002"
    assert "organization of the PractitionerRole" in inbound.resolved["requester"]


def test_an_organization_requester_gives_its_ods_code() -> None:
    bundle = practitioner_bundle()
    entry(bundle, "ServiceRequest")["requester"] = {"reference": full_url(bundle, "Organization")}
    inbound = take(bundle)
    assert referral.requester_ods(inbound.service_request) == "A81002"
    assert inbound.resolved["requester"] == "A81002: the Organization ServiceRequest.requester references"


def test_a_requester_identifier_is_taken_as_it_is() -> None:
    bundle = practitioner_bundle()
    entry(bundle, "ServiceRequest")["requester"] = {"identifier": {"system": systems.ODS_CODE, "value": "A81002"}}
    assert take(bundle).resolved["requester"] == "A81002: ServiceRequest.requester.identifier"


def test_a_practitioner_named_by_gmc_number_finds_their_role_by_identifier() -> None:
    bundle = practitioner_bundle()
    entry(bundle, "ServiceRequest")["requester"] = {"identifier": {"system": systems.GMC_NUMBER, "value": "C1234567"}}
    inbound = take(bundle)
    assert referral.requester_ods(inbound.service_request) == "A81002"
    assert "the Practitioner ServiceRequest.requester.identifier names" in inbound.resolved["requester"]


def test_a_practitioner_without_a_role_takes_the_organisation_from_message_header_sender() -> None:
    bundle = practitioner_bundle()
    remove(bundle, "PractitionerRole")
    inbound = take(bundle)
    assert referral.requester_ods(inbound.service_request) == "A81002"
    assert inbound.resolved["requester"].startswith("A81002: MessageHeader.sender")
    assert inbound.sender == "A81002"


def test_a_sender_given_by_ods_identifier_is_read_too() -> None:
    bundle = practitioner_bundle()
    remove(bundle, "PractitionerRole")
    bundle["entry"][0]["resource"]["sender"] = {"identifier": {"system": systems.ODS_CODE, "value": "A81002"}}
    assert referral.requester_ods(take(bundle).service_request) == "A81002"


def test_a_requester_and_a_sender_that_disagree_are_refused_with_both_named() -> None:
    bundle = practitioner_bundle()
    bundle["entry"][0]["resource"]["sender"] = {"identifier": {"system": systems.ODS_CODE, "value": "A81001"}}
    error = refused(bundle)
    (issue,) = [i for i in error.issues if i.expression == "MessageHeader.sender"]
    assert "A81002" in issue.diagnostics and "A81001" in issue.diagnostics


def test_a_requester_no_source_resolves_is_refused() -> None:
    bundle = practitioner_bundle()
    remove(bundle, "PractitionerRole")
    bundle["entry"][0]["resource"]["sender"] = {"display": "somebody"}
    error = refused(bundle)
    assert [i.expression for i in error.issues] == ["ServiceRequest.requester"]
    assert "cannot be resolved to an ODS code" in error.issues[0].diagnostics


# -- the performer -----------------------------------------------------------------------------


def test_a_healthcare_service_performer_keeps_the_service_and_takes_its_provider() -> None:
    inbound = take(practitioner_bundle())
    sr = inbound.service_request
    assert referral.performer_ods(sr) == "NQ1IA"
    assert referral.named_services(sr) == [(DOS, "2000070002")]
    service = contained(inbound, "performer-service")
    assert service["name"] == "Health and Wellbeing pathway: chronic pain"
    assert service["providedBy"]["identifier"]["value"] == "NQ1IA"
    assert "providedBy" in inbound.resolved["performer"]
    assert inbound.resolved["performer-service"].startswith("dos-service-id 2000070002")


def test_a_service_without_provided_by_takes_its_organisation_from_the_directory() -> None:
    bundle = practitioner_bundle()
    del entry(bundle, "HealthcareService")["providedBy"]
    inbound = take(bundle)
    assert referral.performer_ods(inbound.service_request) == "NQ1IA"
    assert "service directory's entry for dos-service-id 2000070002" in inbound.resolved["performer"]


def test_a_performer_named_by_its_dos_id_alone_takes_its_organisation_from_the_directory() -> None:
    bundle = bars_bundle()
    entry(bundle, "ServiceRequest")["performer"] = [{"identifier": {"system": DOS, "value": "2000070010"}}]
    bundle["entry"][0]["resource"]["destination"][0]["receiver"]["identifier"]["value"] = "RX1PN"
    inbound = take(bundle)
    assert referral.performer_ods(inbound.service_request) == "RX1PN"
    assert referral.named_services(inbound.service_request) == [(DOS, "2000070010")]


def test_a_practitioner_role_performer_gives_its_organization() -> None:
    bundle = bars_bundle()
    role = {
        "resourceType": "PractitionerRole",
        "id": "physio-role",
        "organization": {"identifier": {"system": systems.ODS_CODE, "value": "NQ1IA"}},
    }
    bundle["entry"].append({"fullUrl": "urn:uuid:physio-role", "resource": role})
    entry(bundle, "ServiceRequest")["performer"] = [{"reference": "urn:uuid:physio-role"}]
    inbound = take(bundle)
    assert referral.performer_ods(inbound.service_request) == "NQ1IA"
    assert "PractitionerRole" in inbound.resolved["performer"]


def test_an_organization_performer_gives_its_ods_code() -> None:
    inbound = take(bars_bundle())
    assert inbound.resolved["performer"] == "NQ1IA: the Organization ServiceRequest.performer[0] references"
    assert referral.named_services(inbound.service_request) == []


def test_the_target_identifier_names_the_service_when_the_service_request_does_not() -> None:
    inbound = take(bars_bundle(), targets.encode(DOS, "2000070002"))
    assert referral.performer_ods(inbound.service_request) == "NQ1IA"
    assert referral.named_services(inbound.service_request) == [(DOS, "2000070002")]
    assert inbound.resolved["performer-service"] == (
        "dos-service-id 2000070002: NHSD-Target-Identifier, contained #performer-service"
    )


def test_with_no_performer_at_all_the_target_identifier_gives_service_and_organisation() -> None:
    bundle = bars_bundle()
    del entry(bundle, "ServiceRequest")["performer"]
    del bundle["entry"][0]["resource"]["destination"][0]["receiver"]
    inbound = take(bundle, targets.encode(DOS, "2000070002"))
    assert referral.performer_ods(inbound.service_request) == "NQ1IA"
    assert "NHSD-Target-Identifier" in inbound.resolved["performer"]


def test_with_no_performer_the_message_header_receiver_is_the_performer() -> None:
    bundle = bars_bundle()
    del entry(bundle, "ServiceRequest")["performer"]
    inbound = take(bundle)
    assert referral.performer_ods(inbound.service_request) == "NQ1IA"
    assert inbound.resolved["performer"] == "NQ1IA: MessageHeader.destination[0].receiver (its identifier)"


def test_an_unknown_target_with_nothing_else_is_refused_never_guessed() -> None:
    bundle = bars_bundle()
    del entry(bundle, "ServiceRequest")["performer"]
    del bundle["entry"][0]["resource"]["destination"][0]["receiver"]
    error = refused(bundle, targets.encode(DOS, "999999"))
    (issue,) = error.issues
    assert "does not list the service dos-service-id 999999" in issue.diagnostics


def test_a_target_that_names_another_service_than_the_service_request_is_refused() -> None:
    error = refused(practitioner_bundle(), targets.encode(DOS, "2000070001"))
    assert [i.expression for i in error.issues] == ["NHSD-Target-Identifier"]


def test_a_receiver_that_disagrees_with_the_performer_is_refused() -> None:
    bundle = practitioner_bundle()
    receiver = bundle["entry"][0]["resource"]["destination"][0]["receiver"]
    receiver["identifier"]["value"] = "RX1PN"
    error = refused(bundle)
    assert [i.expression for i in error.issues] == ["MessageHeader.destination[0].receiver"]


@pytest.mark.parametrize("header", ["not base64!", targets.HEADER, "eyJzeXN0ZW0iOiAiYSJ9"])
def test_a_target_identifier_that_cannot_be_read_is_a_400_naming_the_header(header: str) -> None:
    with pytest.raises(MalformedInput) as caught:
        take(bars_bundle(), header)
    assert caught.value.issues[0].expression == targets.HEADER


def test_a_target_identifier_system_variant_is_read_and_warned_about() -> None:
    inbound = take(bars_bundle(), targets.encode("http://fhir.nhs.uk/Id/dos-service-id", "2000070002"))
    assert referral.named_services(inbound.service_request) == [(DOS, "2000070002")]
    assert [(w.expression, w.severity) for w in inbound.warnings] == [(targets.HEADER, "warning")]


def test_the_rest_adapter_resolves_contained_parties_and_the_target_too() -> None:
    body = service_request(
        requester={"reference": "#gp"},
        performer=[{"reference": "#svc"}],
        contained=[
            {
                "resourceType": "Practitioner",
                "id": "gp",
                "identifier": [{"system": systems.GMP_NUMBER, "value": "G1234567"}],
            },
            {
                "resourceType": "PractitionerRole",
                "id": "gp-role",
                "practitioner": {"reference": "#gp"},
                "organization": {"identifier": {"system": systems.ODS_CODE, "value": "A81001"}},
            },
            {"resourceType": "HealthcareService", "id": "svc", "identifier": [{"system": DOS, "value": "2000070010"}]},
        ],
    )
    read = rest.read(json.dumps(body).encode(), JSON, None, DIRECTORY.service_owner)
    assert (referral.requester_ods(read.service_request), referral.performer_ods(read.service_request)) == (
        "A81001",
        "RX1PN",
    )
    assert referral.named_services(read.service_request) == [(DOS, "2000070010")]


# -- every problem at once ---------------------------------------------------------------------


def test_every_problem_with_a_message_is_in_one_refusal_each_at_its_path() -> None:
    bundle = practitioner_bundle()
    header = bundle["entry"][0]["resource"]
    del header["reason"]
    header["sender"] = {"identifier": {"system": systems.ODS_CODE, "value": "A81001"}}
    sr = entry(bundle, "ServiceRequest")
    sr["subject"] = {"reference": "urn:uuid:nobody"}
    sr["status"] = "finished"
    del sr["identifier"]
    error = refused(bundle)
    assert [i.expression for i in error.issues] == [
        "MessageHeader.reason",
        "ServiceRequest.subject.reference",
        "MessageHeader.sender",
        "ServiceRequest.status",
        "ServiceRequest.identifier",
    ]
    assert error.message.endswith("(and 4 more)")


def test_a_role_whose_organization_is_itself_names_no_organisation_and_ends() -> None:
    bundle = practitioner_bundle()
    role = entry(bundle, "PractitionerRole")
    role["organization"] = {"reference": full_url(bundle, "PractitionerRole")}
    bundle["entry"][0]["resource"]["sender"] = {"reference": full_url(bundle, "PractitionerRole")}
    error = refused(bundle)
    assert [i.expression for i in error.issues] == ["ServiceRequest.requester"]
