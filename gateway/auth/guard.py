"""The one app-level dependency every route runs first: look the route up in the policy, then
authenticate, rate-limit, check the scope (and, for a signed-in person's form, the CSRF token).

    route not in policy.py      403  deny by default
    public route                 passes (who and from where are still noted for the audit trail)
    no / bad / expired token     401  WWW-Authenticate: Bearer
    too many requests            429  Retry-After
    scope missing, bad CSRF      403

Every refusal is recorded as an AuditEvent before it is raised (a flood of 429s once per burst).
It reads the authority and the audit trail from the app's state (the runtime puts them there), typed
by what it needs of them. Must not: decide which referrals a caller may see (access.py does, in the read
and update paths), or import the runtime.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import Request

from gateway.audit import context
from gateway.audit.context import Actor
from gateway.audit.events import REFUSED, Entity
from gateway.audit.trail import AuditTrail
from gateway.auth import policy, web
from gateway.auth.authority import Authority
from gateway.auth.policy import Rule
from gateway.auth.principal import Principal
from gateway.errors import Forbidden, GatewayError, RateLimited, Unauthenticated

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Path parameters naming the resource a request is about, for the audit trail.
_ENTITY_PARAMETERS = {"referral_id": "ServiceRequest", "task_id": "Task", "audit_id": "AuditEvent"}


class Gateway(Protocol):
    """What the guard needs of the running gateway (`app.state.runtime`)."""

    @property
    def auth(self) -> Authority: ...
    @property
    def audit(self) -> AuditTrail: ...


async def guard(request: Request) -> None:
    runtime: Gateway = request.app.state.runtime
    address = request.client.host if request.client else None
    context.connected_from(address)
    rule = policy.rule_for(request.method, route_path(request))
    try:
        principal = await _admit(request, runtime.auth, rule)
    except RateLimited as exc:
        if exc.first_refusal:
            await _refused(runtime, request, rule, exc)
        raise
    except GatewayError as exc:
        await _refused(runtime, request, rule, exc)
        raise
    if principal is not None:
        request.state.principal = principal
        context.acting(Actor(principal.id, principal.kind, principal.ods, address))


def route_path(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def principal_of(request: Request) -> Principal:
    """The caller the guard admitted (handlers of non-public routes only)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise Unauthenticated("this route needs credentials", error=None)
    return principal


async def _admit(request: Request, authority: Authority, rule: Rule | None) -> Principal | None:
    if rule is None:
        raise Forbidden(f"{request.method} {route_path(request)} is not in the gateway's route policy")
    if rule.public:
        return None
    try:
        principal = await authority.authenticate(request, rule.cookie)
    except Unauthenticated:
        _limit(authority, f"address:{request.client.host if request.client else '?'}")
        raise
    _limit(authority, f"{principal.kind}:{principal.id}")
    if not any(principal.may(scope) for scope in rule.scopes):
        needed = ", ".join(sorted(rule.scopes))
        raise Forbidden(f"{principal.id} may not {request.method} {route_path(request)}: that needs one of {needed}")
    if principal.via_cookie and request.method not in SAFE_METHODS:
        await web.check_csrf(request, principal)
    return principal


def _limit(authority: Authority, caller: str) -> None:
    verdict = authority.limiter.take(caller)
    if not verdict.allowed:
        message = f"too many requests: try again in {verdict.retry_after_s}s"
        raise RateLimited(message, verdict.retry_after_s, verdict.first_refusal)


async def _refused(runtime: Gateway, request: Request, rule: Rule | None, error: GatewayError) -> None:
    entities = [
        Entity(f"{kind}/{request.path_params[name]}")
        for name, kind in _ENTITY_PARAMETERS.items()
        if name in request.path_params
    ]
    description = f"{request.method} {request.url.path} refused ({error.http_status}): {error.message}"
    await runtime.audit.note(
        rule.interaction if rule else "operation", *entities, outcome=REFUSED, description=description
    )
