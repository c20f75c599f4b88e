"""REF^I12 without PRD segments (a PAS often sends MSH, EVN, RF1 and PID only): the organisations come
from the sender's entry in the settings, matched on MSH-4 and MSH-6, only when the deployment has one.
Pure: no I/O."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.canonical import systems
from gateway.errors import GatewayError, InvalidReferral
from gateway.settings import Hl7SenderOrganisations, MllpSettings, Settings
from tests.hl7v2.messages import MSK, pas_ref_i12, referral, sample, with_field
from tests.samples import valid_nhs_number

PAS = Hl7SenderOrganisations(
    sending_facility="RX1", receiving_facility="RX1PN", referring_ods="rx1", receiving_ods="RX1PN"
)


def ods(reference: object) -> str:
    return reference.identifier.value  # type: ignore[attr-defined, no-any-return]


def refusal(text: str, organisations: Hl7SenderOrganisations | None = None) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        referral(text, organisations=organisations)
    return refused.value


def test_a_ref_i12_without_prd_takes_the_senders_configured_organisations() -> None:
    sr = referral(pas_ref_i12(valid_nhs_number(), prd=False), organisations=PAS).service_request
    assert (ods(sr.requester), ods(sr.performer[0])) == ("RX1", "RX1PN")
    assert sr.requester.identifier.system == systems.ODS_CODE  # type: ignore[union-attr]
    assert not [c for c in sr.contained or [] if c.get_resource_type() == "Practitioner"]


def test_without_the_setting_a_ref_i12_without_prd_is_refused_naming_the_prd() -> None:
    error = refusal(pas_ref_i12(valid_nhs_number(), prd=False))
    assert isinstance(error, InvalidReferral) and error.message == "the message has no referring provider"
    assert error.issues[0].expression == "PRD"


def test_a_prd_the_message_carries_wins_over_the_setting() -> None:
    other = PAS.model_copy(update={"referring_ods": "B82002", "receiving_ods": "NQ1IA"})
    sr = referral(sample(MSK), organisations=other).service_request
    assert (ods(sr.requester), ods(sr.performer[0])) == ("A81001", "RX1PN")


def test_a_prd_without_an_ods_code_is_still_refused_when_the_sender_is_configured() -> None:
    error = refusal(with_field(sample(MSK), "PRD", 7, "7012345^GMC"), PAS)
    assert isinstance(error, InvalidReferral) and error.issues[0].expression == "PRD[1]-7"


def test_only_the_missing_role_is_filled_in() -> None:
    text = pas_ref_i12(valid_nhs_number())  # PRD RP A81001 and RT RX1PN
    text = "\r".join(s for s in text.split("\r") if not s.startswith("PRD|RT")) + "\r"
    sr = referral(text, organisations=PAS).service_request
    assert (ods(sr.requester), ods(sr.performer[0])) == ("A81001", "RX1PN")


def test_the_setting_is_read_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MLLP_SENDER_ORGANISATIONS",
        '[{"sending_facility": "rx1", "receiving_facility": "RX1PN",'
        ' "referring_ods": "rx1", "receiving_ods": "rx1pn"}]',
    )
    (entry,) = Settings().mllp.sender_organisations
    assert entry.key == ("RX1", "RX1PN") and (entry.referring_ods, entry.receiving_ods) == ("RX1", "RX1PN")


def test_an_organisation_that_is_not_an_ods_code_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="not an ODS code"):
        Hl7SenderOrganisations(
            sending_facility="RX1", receiving_facility="GW", referring_ods="The Royal", receiving_ods="RX1PN"
        )


def test_one_sender_and_receiving_facility_pair_is_configured_once() -> None:
    with pytest.raises(ValidationError, match="more than once"):
        MllpSettings(sender_organisations=[PAS, PAS.model_copy(update={"sending_facility": "rx1"})])
