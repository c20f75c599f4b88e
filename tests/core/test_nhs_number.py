import pytest

from gateway.canonical import nhs_number


@pytest.mark.parametrize("value", ["9434765919", "943 476 5870", "943-476-5870", "4010232137"])
def test_valid_nhs_numbers_pass_the_modulus_11_check(value: str) -> None:
    assert nhs_number.is_valid(value)


@pytest.mark.parametrize(
    "value",
    ["9434765918", "943476591", "94347659190", "943476591X", "", "١٢٣٤٥٦٧٨٩٠", "0000000011"],
)
def test_invalid_nhs_numbers_fail(value: str) -> None:
    assert not nhs_number.is_valid(value)


def test_a_remainder_giving_check_digit_10_forms_no_valid_number() -> None:
    # where 11 minus the weighted remainder is 10, no check digit exists and no number is issued
    prefixes = [f"{n:09d}" for n in range(200) if nhs_number.check_digit(f"{n:09d}") is None]
    assert prefixes, "some nine-digit prefixes have no valid check digit"
    assert not any(nhs_number.is_valid(p + str(d)) for p in prefixes[:5] for d in range(10))
