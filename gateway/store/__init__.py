"""The gateway's own store: referrals, their history, the outbox, and processed message ids.
It is what makes loss impossible: nothing is acknowledged before it commits here.

Callers ask its repositories for what they want (accept this referral, claim a batch, record this
delivery, the open dead letters, a referral's trace) and get domain objects back; every write goes
through one door (door.py) onto one writer. Must not: hand a connection out, or import a FHIR model
(resources are kept as their JSON; the canonical model and the spines parse them). .importlinter
holds both.
"""

from gateway.store.store import Store, StoredReferral

__all__ = ["Store", "StoredReferral"]
