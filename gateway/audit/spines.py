"""How the spines describe what they did to the audit trail: a referral accepted or changed (any
channel), a Task moved, a delivery made. Each call is one line at the spine; the wording, the
outcome code and who the actor is (the authenticated caller, else the HL7 sender) are decided here.

Must not: raise because the trail cannot be written after the action committed (`note` logs it).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.audit import context
from gateway.audit.context import Actor
from gateway.audit.events import FAILED, REFUSED, SUCCESS, Entity
from gateway.audit.trail import AuditTrail
from gateway.errors import GatewayError, ReceiverError
from gateway.store.rows import AuditRow
from gateway.store.store import StoredReferral

HL7_CHANNEL_PREFIX = "hl7"


def referral_entity(stored: StoredReferral) -> Entity:
    return Entity(f"ServiceRequest/{stored.id}", stored.requester, stored.performer)


def outcome_of(error: GatewayError | None) -> str:
    if error is None:
        return SUCCESS
    return FAILED if isinstance(error, ReceiverError) else REFUSED


def referral_accepted(
    trail: AuditTrail | None, channel: str, sender: str
) -> Callable[[StoredReferral, bool], AuditRow] | None:
    """The audit row of a referral accepted through any channel, for the store to write in the same
    transaction as the referral (so an AA or a 201 never comes without its audit event). Who acted is
    read now, in the caller's context; the row is made once the store knows whether it is a resend."""
    if trail is None:
        return None
    actor = _actor(channel, sender)
    interaction = "hl7-intake" if channel.startswith(HL7_CHANNEL_PREFIX) else "create"

    def row(stored: StoredReferral, created: bool) -> AuditRow:
        done = "accepted" if created else "a resend: the referral was accepted before"
        return trail.row(interaction, referral_entity(stored), outcome=SUCCESS, description=done, actor=actor)

    return row


def _actor(channel: str, sender: str) -> Actor:
    """The authenticated caller, else the HL7 sender (or an unknown one) from the current address."""
    kind = "hl7-sender" if channel.startswith(HL7_CHANNEL_PREFIX) else "unknown"
    return context.current_actor() or Actor(sender, kind, None, context.current_address())


async def referral_action(
    trail: AuditTrail | None,
    interaction: str,
    channel: str,
    sender: str,
    stored: StoredReferral | None,
    error: GatewayError | None = None,
    description: str | None = None,
) -> None:
    """A referral created or updated (or refused) through any channel."""
    if trail is None:
        return
    hl7 = channel.startswith(HL7_CHANNEL_PREFIX)
    actor = _actor(channel, sender)
    entities = (referral_entity(stored),) if stored is not None else ()
    text = error.message if error is not None else description or f"{interaction} through {channel}"
    await trail.note(
        "hl7-intake" if hl7 and interaction == "create" else interaction,
        *entities,
        outcome=outcome_of(error),
        description=text,
        actor=actor,
    )


async def task_action(
    trail: AuditTrail | None,
    task_id: str,
    sender: str,
    referral: StoredReferral | None,
    error: GatewayError | None = None,
    description: str | None = None,
) -> None:
    """A Task moved along (or refused) by a receiver, over FHIR, HL7 or the status topic."""
    if trail is None:
        return
    requester, performer = (referral.requester, referral.performer) if referral else (None, None)
    entities = [Entity(f"Task/{task_id}", requester, performer)]
    if referral is not None:
        entities.append(referral_entity(referral))
    actor = context.current_actor() or Actor(sender, "system", None, context.current_address())
    text = error.message if error is not None else description
    await trail.note("update", *entities, outcome=outcome_of(error), description=text, actor=actor)
