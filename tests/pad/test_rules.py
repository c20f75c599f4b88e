"""The pad's rules: consent, NHS number, HCPC number, ODS code, dates, phone and postcode, and who
the referrer section belongs to. Every problem names its field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from adapters.inbound.pad import fields, rules
from adapters.inbound.pad.rules import Variant
from gateway.errors import ConsentMissing, GatewayError, InvalidReferral
from tests.pad.pads import pad, physio_fields, self_fields


def check(values: dict[str, Any], variant: Variant = "physiotherapist", **options: Any) -> None:
    leave_out = ("referrer",) if variant == "self" else ()
    qr, unreadable = fields.response_from_fields(values, pad(), leave_out=leave_out, **options)
    rules.check(qr, pad(), variant, prior=unreadable)


def problems(values: dict[str, Any], variant: Variant = "physiotherapist", **options: Any) -> dict[str, str]:
    with pytest.raises(GatewayError) as caught:
        check(values, variant, **options)
    return {str(i.expression): i.diagnostics for i in caught.value.issues}


def test_a_complete_pad_passes() -> None:
    check(physio_fields())
    check(self_fields(), "self")


def test_no_consent_to_the_referral_is_consent_missing() -> None:
    with pytest.raises(ConsentMissing) as caught:
        check(physio_fields({"consent.referral": False}))
    assert caught.value.http_status == 422
    assert "not consented" in caught.value.message
    assert [i.expression for i in caught.value.issues] == ["consent.referral"]


def test_no_consent_to_sharing_is_consent_missing() -> None:
    with pytest.raises(ConsentMissing) as caught:
        check(physio_fields({"consent.sharing": None}))
    assert [i.expression for i in caught.value.issues] == ["consent.sharing"]


def test_an_unticked_consent_box_on_the_form_is_consent_missing() -> None:
    with pytest.raises(ConsentMissing):
        check(physio_fields({"consent.referral": None}), unticked_is_no=fields.checkbox_items(pad()))


def test_missing_consent_still_lists_every_other_problem() -> None:
    with pytest.raises(ConsentMissing) as caught:
        check(physio_fields({"consent.sharing": False, "patient.nhs-number": "9434765918"}))
    assert [i.expression for i in caught.value.issues] == ["consent.sharing", "patient.nhs-number"]


def test_an_nhs_number_with_a_wrong_check_digit_is_refused() -> None:
    assert problems(physio_fields({"patient.nhs-number": "943 476 5918"})) == {
        "patient.nhs-number": "this is not a valid NHS number: check the digits"
    }


def test_an_nhs_number_that_is_not_ten_digits_is_refused() -> None:
    assert "10 digits" in problems(physio_fields({"patient.nhs-number": "94347659"}))["patient.nhs-number"]


def test_an_nhs_number_typed_in_groups_is_accepted() -> None:
    check(physio_fields({"patient.nhs-number": "943 476 5919"}))
    check(physio_fields({"patient.nhs-number": "943-476-5919"}))


@pytest.mark.parametrize("number", ["PH123456", "PH12345", "ph 123456", "PH1"])
def test_hcpc_physiotherapist_numbers_are_ph_then_digits(number: str) -> None:
    check(physio_fields({"referrer.hcpc": number}))


@pytest.mark.parametrize("number", ["123456", "OT123456", "PH", "PH12A456", "PH-123456", "PH12345678"])
def test_other_hcpc_numbers_are_refused(number: str) -> None:
    assert "PH followed by digits" in problems(physio_fields({"referrer.hcpc": number}))["referrer.hcpc"]


@pytest.mark.parametrize("code", ["NPH", "nph01", "RX1AB", "A81001"])
def test_ods_codes_of_the_right_shape_are_accepted(code: str) -> None:
    check(physio_fields({"referrer.organisation-ods": code}))


@pytest.mark.parametrize("code", ["N1", "NPH-01", "ABCDEFGHIJ"])
def test_ods_codes_of_the_wrong_shape_are_refused(code: str) -> None:
    assert "referrer.organisation-ods" in problems(physio_fields({"referrer.organisation-ods": code}))


def test_a_birth_date_in_the_future_is_refused() -> None:
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    assert problems(physio_fields({"patient.birth-date": tomorrow})) == {
        "patient.birth-date": "the date of birth cannot be in the future"
    }


def test_a_birth_date_before_1900_is_refused() -> None:
    assert "patient.birth-date" in problems(physio_fields({"patient.birth-date": "1899-12-31"}))


def test_a_response_authored_in_the_future_is_refused() -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    assert problems(physio_fields(), authored=later) == {
        "QuestionnaireResponse.authored": "authored cannot be in the future"
    }


@pytest.mark.parametrize("phone", ["0113 496 0000", "07700 900000", "+44 7700 900000", "(0113) 496-0000"])
def test_uk_phone_numbers_are_accepted(phone: str) -> None:
    check(physio_fields({"patient.phone": phone}))


@pytest.mark.parametrize("phone", ["496 0000", "call me", "011349600001234"])
def test_other_phone_numbers_are_refused(phone: str) -> None:
    assert "patient.phone" in problems(physio_fields({"patient.phone": phone}))


def test_postcodes_are_checked() -> None:
    check(physio_fields({"patient.postcode": "ls14ap"}))
    assert "patient.postcode" in problems(physio_fields({"patient.postcode": "LEEDS"}))


def test_a_physiotherapists_pad_needs_the_referrer_section() -> None:
    values = {k: v for k, v in physio_fields().items() if not k.startswith("referrer.")}
    found = problems(values)
    assert set(found) == {
        "referrer.name",
        "referrer.hcpc",
        "referrer.organisation-ods",
        "referrer.setting",
        "referrer.phone",
    }


def test_a_self_referral_has_no_referrer_section() -> None:
    qr, _ = fields.response_from_fields(physio_fields(), pad())
    with pytest.raises(InvalidReferral) as caught:
        rules.check(qr, pad(), "self")
    assert [i.expression for i in caught.value.issues] == ["referrer"]


def test_who_referred_is_read_from_the_response() -> None:
    physio, _ = fields.response_from_fields(physio_fields(), pad())
    patient, _ = fields.response_from_fields(self_fields(), pad(), leave_out=("referrer",))
    assert rules.variant_of(physio) == "physiotherapist"
    assert rules.variant_of(patient) == "self"


def test_problems_are_listed_in_the_order_of_the_form() -> None:
    values = physio_fields(
        {"referrer.hcpc": "X", "patient.postcode": "X", "patient.nhs-number": "1", "pathway.recommended": None}
    )
    assert list(problems(values)) == ["patient.nhs-number", "patient.postcode", "referrer.hcpc", "pathway.recommended"]


def test_a_positive_risk_screen_is_not_an_error() -> None:
    check(physio_fields({"risk.self-harm-thoughts": True}))
