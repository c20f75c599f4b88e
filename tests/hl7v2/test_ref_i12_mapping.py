"""REF^I12 to the canonical ServiceRequest, field by field (schemas/hl7v2/ref_i12_mapping.md), and the
refusals that name the HL7 field at fault. Pure: no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.canonical import referral as ref
from gateway.canonical import systems, ukcore
from gateway.errors import GatewayError, InvalidReferral, MalformedInput, UnsupportedInput
from tests.hl7v2.messages import CUSTOM, ESCAPES, IAPT, LF, MSK, ZSEG, referral, sample, with_field, without


def mapped(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(referral(text).service_request.model_dump_json())
    return data


def contained(sr: dict[str, Any], resource_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in sr["contained"] if r["id"] == resource_id)
    return found


def refusal(text: str) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        referral(text)
    return refused.value


# -- who and what: the InboundReferral ---------------------------------------------------------


def test_msh_3_and_4_name_the_sender_and_msh_10_the_message() -> None:
    inbound = referral(sample(MSK))
    assert inbound.channel == "hl7v2-mllp"
    assert inbound.sender == "EMISWeb^A81001"
    assert inbound.message_id == "EMIS000123" and inbound.correlation_id == "EMIS000123"
    assert inbound.reason == "new"


def test_a_given_correlation_id_is_kept() -> None:
    assert referral(sample(MSK), correlation_id="corr-7").correlation_id == "corr-7"


def test_the_same_message_always_maps_to_the_same_service_request() -> None:
    assert mapped(sample(MSK)) == mapped(sample(MSK))


def test_every_sample_meets_the_uk_core_rules() -> None:
    for name in (MSK, IAPT, CUSTOM, ESCAPES, LF, ZSEG):
        ukcore.validate(referral(sample(name)).service_request)


# -- RF1 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "priority"), [("R", "routine"), ("A", "asap"), ("S", "stat"), ("U", "urgent")])
def test_ref_i12_maps_rf1_2_to_priority(code: str, priority: str) -> None:
    sr = mapped(with_field(sample(MSK), "RF1", 2, f"{code}^x^HL70280"))
    assert sr["priority"] == priority


def test_an_empty_rf1_2_is_routine() -> None:
    assert mapped(with_field(sample(MSK), "RF1", 2, ""))["priority"] == "routine"


def test_an_unknown_rf1_2_is_refused_not_guessed() -> None:
    error = refusal(with_field(sample(MSK), "RF1", 2, "2WW^Two week wait^L"))
    assert isinstance(error, InvalidReferral)
    assert error.issues[0].expression == "RF1-2" and error.issues[0].code == "code-invalid"


@pytest.mark.parametrize(("code", "status"), [("P", "active"), ("A", "active"), ("R", "revoked"), ("E", "revoked")])
def test_ref_i12_maps_rf1_1_to_status(code: str, status: str) -> None:
    assert mapped(with_field(sample(MSK), "RF1", 1, code))["status"] == status


def test_rf1_3_is_the_code_and_rf1_5_the_category() -> None:
    sr = mapped(sample(MSK))
    assert sr["code"]["coding"] == [
        {"system": systems.SNOMED_CT, "code": "183545006", "display": "Referral to pain clinic"}
    ]
    assert sr["category"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0284",
        "code": "O",
        "display": "Outpatient",
    }
    assert sr["intent"] == "order"


def test_rf1_6_is_the_business_identifier_local_to_its_namespace() -> None:
    sr = referral(sample(MSK)).service_request
    assert ref.business_identifier(sr) == ("https://referral-gateway.nhs.example/Id/referral/A81001", "EMIS-REF-000123")


def test_rf1_6_without_a_namespace_is_local_to_the_sending_facility() -> None:
    sr = mapped(with_field(sample(IAPT), "RF1", 6, "S1-42"))
    assert sr["identifier"] == [{"system": "https://referral-gateway.nhs.example/Id/referral/B82005", "value": "S1-42"}]


@pytest.mark.parametrize(
    ("ei", "system"),
    [
        ("000012345678^UBRN", "https://fhir.nhs.uk/Id/UBRN"),
        ("R-1^^2.16.840.1.113883.2.1.3.2.4.18.48^ISO", "urn:oid:2.16.840.1.113883.2.1.3.2.4.18.48"),
        ("R-1^^https://practice.example/referrals^URI", "https://practice.example/referrals"),
    ],
)
def test_rf1_6_namespaces_and_universal_ids_name_the_system(ei: str, system: str) -> None:
    assert mapped(with_field(sample(MSK), "RF1", 6, ei))["identifier"][0]["system"] == system


def test_a_missing_rf1_6_is_refused_at_rf1_6() -> None:
    error = refusal(with_field(sample(MSK), "RF1", 6, ""))
    assert isinstance(error, InvalidReferral) and error.issues[0].expression == "RF1-6"


def test_rf1_7_and_rf1_8_are_the_period_and_rf1_9_the_authored_time() -> None:
    text = with_field(with_field(sample(MSK), "RF1", 8, "20270520"), "RF1", 7, "202611201000")
    sr = mapped(text)
    assert sr["occurrencePeriod"] == {"start": "2026-11-20T10:00:00Z", "end": "2027-05-20"}
    assert sr["authoredOn"] == "2026-11-20T09:30:00Z"


def test_without_rf1_9_the_message_time_is_the_authored_time() -> None:
    sr = mapped(with_field(with_field(sample(MSK), "RF1", 9, ""), "MSH", 7, "20261120081500"))
    assert sr["authoredOn"] == "2026-11-20T08:15:00Z"


def test_hl7_times_without_an_offset_are_uk_local_time() -> None:
    assert mapped(sample(LF))["authoredOn"] == "2026-07-15T10:20:00+01:00", "British Summer Time in July"
    assert mapped(with_field(sample(MSK), "RF1", 9, "20261120093000-0500"))["authoredOn"] == "2026-11-20T09:30:00-05:00"


@pytest.mark.parametrize("bad", ["2026-11-20", "20261340", "yesterday", "20261120250000"])
def test_an_unreadable_date_is_refused_at_its_field(bad: str) -> None:
    error = refusal(with_field(sample(MSK), "RF1", 9, bad))
    assert isinstance(error, InvalidReferral) and error.issues[0].expression == "RF1-9"


# -- PID ----------------------------------------------------------------------------------------


def test_pid_3_nhs_number_is_the_subject() -> None:
    sr = referral(sample(MSK)).service_request
    assert ref.nhs_number(sr) == "9434765919"
    assert sr.subject is not None and sr.subject.reference is None, "a logical reference, by identifier only"


@pytest.mark.parametrize(
    "pid_3",
    [
        "E1^^^A81001^PI~9434765919^^^NHS^NH",
        "9434765919^^^NHS",
        "9434765919^^^^NH",
        "9434765919^^^&2.16.840.1.113883.2.1.4.1&ISO^PT",
        "943 476 5919^^^NHS^NH",
    ],
)
def test_the_nhs_number_is_the_repetition_whose_authority_or_type_says_nhs(pid_3: str) -> None:
    assert ref.nhs_number(referral(with_field(sample(MSK), "PID", 3, pid_3)).service_request) == "9434765919"


def test_a_pid_3_without_an_nhs_repetition_is_refused_at_pid_3() -> None:
    error = refusal(with_field(sample(MSK), "PID", 3, "E123456^^^A81001^PI"))
    assert isinstance(error, InvalidReferral)
    assert error.issues[0].expression == "PID-3" and error.issues[0].code == "required"


@pytest.mark.parametrize("number", ["9434765918", "943476591", "94347659190", "943476591X"])
def test_a_bad_nhs_number_is_refused_at_pid_3(number: str) -> None:
    error = refusal(with_field(sample(MSK), "PID", 3, f"{number}^^^NHS^NH"))
    assert isinstance(error, InvalidReferral)
    assert error.issues[0].expression == "PID-3" and error.issues[0].code == "value"
    assert number not in error.message and all(number not in (i.diagnostics or "") for i in error.issues)


def test_the_patient_is_contained_with_name_birth_date_sex_address_and_phone() -> None:
    patient = contained(mapped(sample(MSK)), "patient")
    assert patient["identifier"][0] == {"system": systems.NHS_NUMBER, "value": "9434765919"}
    assert (
        patient["identifier"][1]["value"] == "E123456" and patient["identifier"][1]["assigner"]["display"] == "A81001"
    )
    assert patient["name"] == [
        {"use": "official", "family": "Smith", "given": ["Jane", "Elizabeth"], "prefix": ["Mrs"]}
    ]
    assert patient["birthDate"] == "1978-03-14" and patient["gender"] == "female"
    assert patient["address"] == [
        {"use": "home", "line": ["14 Park Road"], "city": "Anytown", "postalCode": "AN1 3CD", "country": "GBR"}
    ]
    assert patient["telecom"] == [
        {"system": "phone", "value": "01632960456", "use": "home"},
        {"system": "email", "value": "jane.smith@example.com", "use": "home"},
    ]


def test_a_mobile_number_is_a_mobile() -> None:
    patient = contained(mapped(sample(IAPT)), "patient")
    assert patient["telecom"] == [{"system": "phone", "value": "07700900123", "use": "mobile"}]


@pytest.mark.parametrize(("code", "gender"), [("M", "male"), ("F", "female"), ("O", "other"), ("U", "unknown")])
def test_pid_8_is_the_gender(code: str, gender: str) -> None:
    assert contained(mapped(with_field(sample(MSK), "PID", 8, code)), "patient")["gender"] == gender


# -- PRD ----------------------------------------------------------------------------------------


def test_prd_rp_ods_code_is_the_requester_and_rt_the_performer() -> None:
    sr = referral(sample(MSK)).service_request
    assert ref.requester_ods(sr) == "A81001" and ref.performer_ods(sr) == "RX1PN"
    assert sr.requester is not None and sr.requester.display == "Dr Anita Patel"


def test_the_referrers_professional_codes_are_kept() -> None:
    referrer = contained(mapped(sample(MSK)), "referrer")
    assert referrer["identifier"] == [
        {"system": "https://fhir.hl7.org.uk/Id/gmp-number", "value": "G8123456"},
        {"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "7012345"},
    ]
    assert referrer["telecom"] == [{"system": "phone", "value": "01632960123", "use": "work"}]
    assert referrer["address"][0]["line"] == ["The Surgery", "1 High Street"]


def test_a_prd_1_with_text_and_table_still_names_the_role() -> None:
    sr = referral(sample(IAPT)).service_request
    assert ref.requester_ods(sr) == "B82005" and ref.performer_ods(sr) == "NQ1IA"


@pytest.mark.parametrize(("role", "occurrence"), [("RP", 1), ("RT", 2)])
def test_a_provider_without_an_ods_code_is_refused_at_its_prd_7(role: str, occurrence: int) -> None:
    error = refusal(with_field(sample(MSK), "PRD", 7, "7012345^GMC", occurrence))
    assert isinstance(error, InvalidReferral) and error.issues[0].expression == f"PRD[{occurrence}]-7"


def test_a_missing_referred_to_provider_is_refused() -> None:
    error = refusal(with_field(sample(MSK), "PRD", 1, "PP", occurrence=2))
    assert isinstance(error, InvalidReferral) and error.issues[0].expression == "PRD"


def test_a_malformed_ods_code_is_refused() -> None:
    error = refusal(with_field(sample(MSK), "PRD", 7, "rx1-pn^ODS", occurrence=2))
    assert isinstance(error, InvalidReferral) and error.issues[0].code == "value"


def test_a_gp_referral_is_marked_as_referred_by_a_gp() -> None:
    assert ref.source_of_referral(referral(sample(MSK)).service_request) == "108161000000109"


def test_a_physiotherapist_referrer_says_otherwise() -> None:
    text = with_field(sample(MSK), "PRD", 7, "A81001^ODS~PH123456^HCPC")
    sr = referral(text).service_request
    assert ref.source_of_referral(sr) == "185370009"
    assert contained(mapped(text), "referrer")["identifier"] == [
        {"system": "https://fhir.hl7.org.uk/Id/hcpc-number", "value": "PH123456"}
    ]


# -- DG1, OBX, NTE ------------------------------------------------------------------------------


def test_dg1_3_is_a_reason_coded_as_its_coding_system_says() -> None:
    reasons = mapped(sample(MSK))["reasonCode"]
    assert [c["coding"][0]["system"] for c in reasons] == [systems.SNOMED_CT, systems.ICD_10]
    assert [c["coding"][0]["code"] for c in reasons] == ["279039007", "M54.5"]


@pytest.mark.parametrize(
    ("dg1_3", "expected"),
    [
        (
            "72274001^Radiculopathy^SNOMEDCT",
            {"coding": [{"system": systems.SNOMED_CT, "code": "72274001", "display": "Radiculopathy"}]},
        ),
        (
            "X1^Local^99LOC",
            {
                "coding": [
                    {
                        "system": "https://referral-gateway.nhs.example/CodeSystem/hl7v2/99LOC",
                        "code": "X1",
                        "display": "Local",
                    }
                ]
            },
        ),
        ("^Back pain, not coded", {"text": "Back pain, not coded"}),
        (
            "279039007^Low back pain^SCT^M54.5^Low back pain^I10",
            {
                "coding": [
                    {"system": systems.SNOMED_CT, "code": "279039007", "display": "Low back pain"},
                    {"system": systems.ICD_10, "code": "M54.5", "display": "Low back pain"},
                ]
            },
        ),
    ],
)
def test_dg1_coding_systems(dg1_3: str, expected: dict[str, Any]) -> None:
    assert mapped(with_field(sample(MSK), "DG1", 3, dg1_3))["reasonCode"][0] == expected


def test_obx_become_contained_observations_in_supporting_info() -> None:
    sr = mapped(sample(MSK))
    score, history = contained(sr, "obx-1"), contained(sr, "obx-2")
    assert score["valueQuantity"] == {
        "value": 7,
        "unit": "score",
        "system": "http://unitsofmeasure.org",
        "code": "{score}",
    }
    assert score["status"] == "final" and score["effectiveDateTime"] == "2026-11-20T09:15:00Z"
    assert history["valueString"] == "Pain for 9 months, worse on sitting.\nNo red flags on examination."
    assert {"reference": "#obx-1", "display": "Visual analogue pain score"} in sr["supportingInfo"]


def test_an_nte_after_an_obx_is_the_observations_and_the_others_are_the_referrals() -> None:
    sr = mapped(sample(MSK))
    assert contained(sr, "obx-2")["note"] == [
        {"text": "Has completed a course of physiotherapy without lasting benefit."}
    ]
    assert [n["text"] for n in sr["note"]] == [
        "Please consider the pain management programme.",
        "Patient prefers morning appointments.",
    ]


def test_an_obx_without_an_identifier_is_refused_at_obx_3() -> None:
    error = refusal(with_field(sample(MSK), "OBX", 3, "", occurrence=2))
    assert isinstance(error, InvalidReferral) and error.issues[0].expression == "OBX[2]-3"


def test_a_numeric_obx_that_is_not_a_number_is_refused_at_obx_5() -> None:
    error = refusal(with_field(sample(MSK), "OBX", 5, "seven"))
    assert isinstance(error, InvalidReferral) and error.issues[0].expression == "OBX[1]-5"


def test_escapes_reach_the_referral_decoded() -> None:
    sr = mapped(sample(ESCAPES))
    assert contained(sr, "patient")["name"][0]["given"] == ["Zoë"]
    assert contained(sr, "patient")["address"][0]["line"][0] == "Flat 2^B"
    assert sr["performer"][0]["display"] == "Integrated MSK & Pain Service"
    assert sr["note"][0]["text"] == "Pain score 8^10 at rest \\ worse at night.\nTried: paracetamol & codeine~naproxen."
    assert sr["note"][1]["text"] == "Field separator in text: | and highlighting: urgent review please."


def test_custom_encoding_characters_map_like_standard_ones() -> None:
    sr = referral(sample(CUSTOM)).service_request
    assert ref.performer_ods(sr) == "NPH01" and ref.requester_ods(sr) == "C84012" and ref.nhs_number(sr) == "4857773457"
    assert sr.priority == "routine" and ref.codes(sr.reasonCode) == {"202882003"}


def test_z_segments_are_ignored() -> None:
    sr = mapped(sample(ZSEG))
    assert "Internal practice note" not in json.dumps(sr) and "Interpreter" not in json.dumps(sr)
    assert [n["text"] for n in sr["note"]] == ["Left-sided sciatica for seven weeks; struggling at work."]


# -- what is not a REF^I12 the gateway takes ----------------------------------------------------


@pytest.mark.parametrize(("segment", "where"), [("RF1", "RF1"), ("PID", "PID"), ("PRD", "PRD")])
def test_a_missing_required_segment_is_refused_naming_it(segment: str, where: str) -> None:
    error = refusal(without(sample(MSK), segment))
    assert isinstance(error, InvalidReferral) and error.issues[0].expression == where


@pytest.mark.parametrize(
    ("msh_9", "where"), [("ADT^A01^ADT_A01", "MSH-9"), ("REF^I13^REF_I12", "MSH-9.2"), ("ORU^R01^ORU_R01", "MSH-9")]
)
def test_a_wrong_message_type_is_unsupported(msh_9: str, where: str) -> None:
    error = refusal(with_field(sample(MSK), "MSH", 9, msh_9))
    assert isinstance(error, UnsupportedInput) and error.ack_code == "AR"
    assert error.issues[0].expression == where


@pytest.mark.parametrize(("field", "value", "where"), [(12, "2.7", "MSH-12"), (11, "T", "MSH-11"), (11, "D", "MSH-11")])
def test_versions_and_processing_ids_not_taken_are_unsupported(field: int, value: str, where: str) -> None:
    error = refusal(with_field(sample(MSK), "MSH", field, value))
    assert isinstance(error, UnsupportedInput) and error.issues[0].expression == where


@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5", "2.5.1"])
def test_versions_2_3_1_to_2_5_1_are_taken(version: str) -> None:
    assert referral(with_field(sample(MSK), "MSH", 12, version)).message_id == "EMIS000123"


def test_a_message_without_a_control_id_is_malformed() -> None:
    error = refusal(with_field(sample(MSK), "MSH", 10, ""))
    assert isinstance(error, MalformedInput) and error.issues[0].expression == "MSH-10"
