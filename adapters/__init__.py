"""Adapters translate between a wire format and the canonical referral; they never route,
publish, store or commit (that is the gateway's spine)."""
