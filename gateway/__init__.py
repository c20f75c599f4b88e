"""Referral Gateway: carries patient referrals between NHS services as FHIR R4 events on Kafka."""

__version__ = "0.1.0"
