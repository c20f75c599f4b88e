"""Inbound adapters: from what a sending system speaks to a canonical `InboundReferral`."""
