"""Pad references: what the physiotherapist writes in the notes and reads to the patient.

`PAD-` and eight characters of Crockford's base32 (no I, L, O or U, so nothing is misread), in two
groups of four: 40 random bits, so references from different gateway processes do not collide.
"""

from __future__ import annotations

import re
import secrets

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PATTERN = re.compile(r"^PAD-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


def new_reference() -> str:
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"PAD-{chars[:4]}-{chars[4:]}"
