"""Which HL7 v2 senders the MLLP listener takes messages from: each known sender is a sending
facility (MSH-4.1) and the addresses it may connect from (`MLLP_SENDERS`). With none configured,
any facility is taken (the listener's own address allowlist still applies).

`SenderCheck` is the hook the HL7 handler calls once the header is read: a refusal is recorded in
the audit trail and raised as `Forbidden` (ACK AR, ERR at MSH-4). Must not: parse HL7.
"""

from __future__ import annotations

import ipaddress

from adapters.hl7v2.header import Header
from gateway.audit import context
from gateway.audit.context import Actor
from gateway.audit.events import REFUSED
from gateway.audit.trail import AuditTrail
from gateway.errors import Forbidden, Issue
from gateway.settings import MllpSender

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SenderPolicy:
    def __init__(self, senders: list[MllpSender]) -> None:
        self._senders: dict[str, list[Network]] = {
            s.facility.upper(): [ipaddress.ip_network(n, strict=False) for n in s.sources] for s in senders
        }

    def check(self, facility: str, address: str | None) -> None:
        if not self._senders:
            return
        networks = self._senders.get(facility.upper())
        if networks is None:
            raise Forbidden(
                f"sending facility '{facility}' is not a sender this gateway knows",
                Issue(f"MSH-4 '{facility}' is not in MLLP_SENDERS", "MSH-4", "forbidden"),
            )
        if networks and not _inside(address, networks):
            raise Forbidden(
                f"sending facility '{facility}' may not send from {address}",
                Issue(f"{address} is not one of the addresses of MSH-4 '{facility}'", "MSH-4", "forbidden"),
            )


class SenderCheck:
    """The handler's hook: check the header's sender against the policy, auditing a refusal."""

    def __init__(self, policy: SenderPolicy, audit: AuditTrail) -> None:
        self._policy = policy
        self._audit = audit

    async def __call__(self, head: Header) -> None:
        address = context.current_address()
        try:
            self._policy.check(head.sending_facility, address)
        except Forbidden as exc:
            actor = Actor(head.sender, "hl7-sender", None, address)
            await self._audit.note("hl7-intake", outcome=REFUSED, description=exc.message, actor=actor)
            raise


def _inside(address: str | None, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)
