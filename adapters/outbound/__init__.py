"""Outbound adapters: from a referral event to what a receiving system speaks."""
