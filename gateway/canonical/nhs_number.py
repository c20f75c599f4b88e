"""NHS number checks: ten digits whose last is a modulus-11 check digit (NHS Data Dictionary)."""

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def normalise(value: str) -> str:
    """Drop the spaces and dashes people type between the 3-3-4 groups."""
    return value.replace(" ", "").replace("-", "")


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine digits, or None where no valid number can be formed (11 - r == 10)."""
    remainder = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True)) % 11
    digit = 11 - remainder
    if digit == 11:
        return 0
    return None if digit == 10 else digit


def is_valid(value: str) -> bool:
    """True for a ten-digit NHS number with a correct check digit."""
    number = normalise(value)
    if len(number) != 10 or not number.isascii() or not number.isdigit():
        return False
    return check_digit(number[:9]) == int(number[9])
