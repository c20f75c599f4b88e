"""Known system URIs and their variants: read a system the way its sender meant it.

Published examples carry small variants of well-known identifier and code systems
(`https://fhir.nhs.uk/id/ods-organization-code`, `http://fhir.nhs.uk/Id/nhs-number`). A variant that
differs from a system below only in letter case, in http/https or in a trailing slash is read as that
system, and each such reading is reported as a warning at its FHIRPath, so the sender can mend its
data without a referral being lost. Any other unknown system is left as it is.

Pure: walks FHIR JSON (dicts and lists) in place. Must not: change anything but `system` values.
"""

from __future__ import annotations

from typing import Any

from gateway.canonical import systems
from gateway.errors import Issue

KNOWN: tuple[str, ...] = (
    systems.NHS_NUMBER,
    systems.ODS_CODE,
    systems.ODS_SITE_CODE,
    systems.SDS_USER_ID,
    systems.SDS_ROLE_PROFILE_ID,
    systems.GMC_NUMBER,
    systems.GMP_NUMBER,
    systems.NMC_NUMBER,
    systems.HCPC_NUMBER,
    systems.DOS_SERVICE_ID,
    systems.UBRN,
    systems.SNOMED_CT,
    systems.ICD_10,
    systems.BARS_MESSAGE_EVENTS,
    systems.BARS_MESSAGE_REASON,
    systems.NHS_NUMBER_VERIFICATION,
)


def _key(uri: str) -> str:
    bare = uri.strip().lower().rstrip("/")
    for scheme in ("https://", "http://"):
        bare = bare.removeprefix(scheme)
    return bare


_BY_KEY = {_key(uri): uri for uri in KNOWN}


def canonical(uri: str) -> str:
    """The known system `uri` is a variant of, or `uri` itself."""
    return _BY_KEY.get(_key(uri), uri)


def normalise(data: Any, path: str) -> list[Issue]:
    """Replace every variant `system` in `data` (FHIR JSON at FHIRPath `path`) by its canonical URI;
    one warning issue for each."""
    issues: list[Issue] = []
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}"
            if key == "system" and isinstance(value, str) and (fixed := canonical(value)) != value:
                data[key] = fixed
                issues.append(Issue(f"system '{value}' was read as '{fixed}'", where, "value", "warning"))
            else:
                issues += normalise(value, where)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            issues += normalise(item, f"{path}[{i}]")
    return issues
