"""Who is using the monitor, for its pages and JSON: the viewer (whether they may unmask), the name
recorded with a replay or a discard, and which referrals they may trace (the organisation rule).

The signed-in person or partner is the one the route guard admitted (`request.state.principal`); a
gateway run without sign-in knows nobody, and a replay is then recorded under the name typed in.
"""

from __future__ import annotations

from fastapi import Request

from gateway.auth.access import may_see, search_filter
from gateway.auth.principal import Principal
from gateway.monitoring import access
from gateway.monitoring.trace import Found


def principal(request: Request) -> Principal | None:
    found: Principal | None = getattr(request.state, "principal", None)
    return found


def viewer(request: Request) -> access.Viewer:
    who = principal(request)
    return access.Viewer(who.id, who.roles) if who is not None else access.Viewer()


def actor(request: Request, typed: object = None) -> str:
    """Who a replay or a discard is recorded as: the signed-in caller, else the name typed in."""
    who = principal(request)
    if who is not None:
        return who.id
    return str(typed or "").strip() or access.Viewer().name


def visible(request: Request, found: list[Found]) -> list[Found]:
    """The referrals among `found` this caller may trace (their organisation's, unless they see all)."""
    who = principal(request)
    return found if who is None else [f for f in found if may_see(who, f.requester, f.performer)]


def organisation(request: Request) -> str | None:
    """The organisation a search is limited to for this caller (None: every organisation's)."""
    who = principal(request)
    return None if who is None else search_filter(who)
