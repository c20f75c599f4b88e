"""Who is acting, and from where, for the request or connection being served: set once at the edge
(the HTTP guard, the MLLP listener) and read where actions are recorded, so the spines need no
extra parameters to say who did what.

Context variables follow the asyncio task: each HTTP request and each MLLP connection has its own.
Must not: decide anything (the guard and access rules do).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, replace

#: Identifier systems for the kinds of actor, in AuditEvent.agent.who.identifier.
ACTOR_SYSTEMS = {
    "client": "https://referral-gateway.nhs.example/Id/oauth-client",
    "person": "https://referral-gateway.nhs.example/Id/user",
    "hl7-sender": "https://referral-gateway.nhs.example/Id/hl7-sender",
    "system": "https://referral-gateway.nhs.example/Id/system",
    "unknown": "https://referral-gateway.nhs.example/Id/unauthenticated",
}


@dataclass(frozen=True)
class Actor:
    id: str  # client id, user name, MSH-3^MSH-4, or the gateway's own component
    kind: str  # one of ACTOR_SYSTEMS
    ods: str | None = None  # the organisation acted for
    address: str | None = None  # the network address the request came from

    def at(self, address: str | None) -> Actor:
        return replace(self, address=address)


GATEWAY = Actor("referral-gateway", "system")

_actor: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)
_address: ContextVar[str | None] = ContextVar("audit_address", default=None)


def acting(actor: Actor) -> None:
    """The caller of the current request is known (the guard authenticated it)."""
    _actor.set(actor)
    _address.set(actor.address)


def connected_from(address: str | None) -> None:
    """The current request or connection comes from this address (caller not known yet)."""
    _address.set(address)


def current_actor() -> Actor | None:
    return _actor.get()


def current_address() -> str | None:
    return _address.get()


def anonymous() -> Actor:
    return Actor("anonymous", "unknown", None, _address.get())
