"""The gateway's own store: referrals, their history, the outbox, and processed message ids.
It is what makes loss impossible: nothing is acknowledged before it commits here."""

from gateway.store.store import Store, StoredReferral

__all__ = ["Store", "StoredReferral"]
