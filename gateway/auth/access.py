"""The organisation rule: an organisation reads and changes only the referrals it sent (requester
ODS) or that are addressed to it (performer ODS); a Task goes with its referral. A principal with
`all_organisations` (integration, operations) sees every referral.

One place for the rule, called from the shared read, search and update paths (the FHIR API, the
intake's and status spine's `authorise` hooks, the monitor's trace). Every refusal is `Forbidden`.
Pure. Must not: check scopes (the route policy does) or read the store.
"""

from __future__ import annotations

from collections.abc import Callable

from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.auth.principal import Principal
from gateway.canonical import ods
from gateway.canonical import referral as ref
from gateway.errors import Forbidden, Issue
from gateway.store.store import StoredReferral


def may_see(principal: Principal, requester: str | None, performer: str | None) -> bool:
    return principal.acts_for(requester, performer)


def check_referral(principal: Principal, stored: StoredReferral, what: str | None = None) -> None:
    if not may_see(principal, stored.requester, stored.performer):
        raise Forbidden(
            f"{what or f'ServiceRequest/{stored.id}'} is not a referral of {principal.ods}",
            Issue(
                f"{principal.id} acts for {principal.ods}; this referral is between "
                f"{stored.requester or 'unknown'} and {stored.performer or 'unknown'}",
                code="forbidden",
            ),
        )


def referral_check(principal: Principal) -> Callable[[StoredReferral], None]:
    """The check as a hook for a spine: called with the referral before it is changed."""
    return lambda stored: check_referral(principal, stored)


def check_sender(principal: Principal, sr: ServiceRequest) -> None:
    """A partner sends referrals as its own organisation: the requester must be it."""
    requester = ref.requester_ods(sr)
    if principal.all_organisations or requester == principal.ods:
        return
    raise Forbidden(
        f"{principal.id} sends for {principal.ods}, not for {requester or 'an unnamed requester'}",
        Issue("the requester must be the sending organisation's ODS code", "ServiceRequest.requester", "forbidden"),
    )


def check_message_sender(principal: Principal, sender: str | None) -> None:
    """A BaRS message's MessageHeader.sender must be the organisation the token was issued to."""
    if principal.all_organisations or sender is None or not ods.is_valid(sender) or sender == principal.ods:
        return
    raise Forbidden(
        f"MessageHeader.sender is {sender}, but the token was issued to {principal.ods}: they must be the same "
        "organisation",
        Issue(
            f"the token's organisation is {principal.ods}; MessageHeader.sender names {sender}",
            "MessageHeader.sender",
            "forbidden",
        ),
    )


def search_filter(principal: Principal) -> str | None:
    """The organisation a search is limited to (None: every organisation's)."""
    return None if principal.all_organisations else principal.ods
