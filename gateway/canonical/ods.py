"""ODS organisation and site codes: the shapes the Organisation Data Service issues."""

import re

# Practices (A81001), trusts (RX1), sites (RX1AB), CCG/ICB-style (00L), independent providers (NQ1, NV123)
# and branch codes (A81001001): 3 to 9 upper-case letters and digits, starting with a letter or digit.
_ODS = re.compile(r"^[A-Z0-9]{3,9}$")


def is_valid(value: str) -> bool:
    """True where the value has the shape of an ODS code (the directory, not this, says it exists)."""
    return bool(_ODS.fullmatch(value))
