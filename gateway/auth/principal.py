"""Who is calling: a partner's system (OAuth2 client) or a person signed in to the web pages, the
organisation (ODS code) they act for, and what they may do (SMART-style scopes).

Scopes are `system/<Resource>.<read|write>` for the FHIR API (`system/*.read` reads every resource
type) and plain names for the rest. Must not: look anything up; this is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SCOPES = (
    "system/ServiceRequest.write",
    "system/ServiceRequest.read",
    "system/Task.write",
    "system/Task.read",
    "system/*.read",
    "system/QuestionnaireResponse.write",
    "system/AuditEvent.read",
    "monitor.read",
    "monitor.replay",
    "monitor.resubmit",
    "pad.submit",
)

#: Roles beyond scopes: the monitor shows patient identifiers unmasked only to this one.
ROLES = ("patient-data-viewer",)

Kind = Literal["client", "person"]


@dataclass(frozen=True)
class Principal:
    id: str  # client id, or a person's user name
    kind: Kind
    ods: str  # the organisation they act for
    scopes: frozenset[str]
    all_organisations: bool = False  # may see every organisation's referrals (integration, operations)
    roles: frozenset[str] = frozenset()
    via_cookie: bool = False  # authenticated by the session cookie (forms then need the CSRF token)
    csrf: str = ""  # the session's CSRF token

    def may(self, scope: str) -> bool:
        if scope in self.scopes:
            return True
        return scope.startswith("system/") and scope.endswith(".read") and "system/*.read" in self.scopes

    def acts_for(self, *organisations: str | None) -> bool:
        """May this principal see a referral between these organisations?"""
        return self.all_organisations or self.ods in organisations


def parse_scopes(text: str) -> frozenset[str]:
    """Space-separated scopes (RFC 6749 §3.3); raises ValueError naming any this gateway does not know."""
    scopes = frozenset(text.split())
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; known: {' '.join(SCOPES)}")
    return scopes


def parse_roles(text: str) -> frozenset[str]:
    roles = frozenset(text.split())
    unknown = sorted(roles - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(unknown)}; known: {' '.join(ROLES)}")
    return roles
