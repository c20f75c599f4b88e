"""HL7 v2 for receivers and referrers that speak it: REF^I12 for a referral, RRI^I12 for its status."""

from adapters.outbound.hl7v2.encode import encode_ref_i12, encode_rri_i12, ref_i12, rri_i12

__all__ = ["encode_ref_i12", "encode_rri_i12", "ref_i12", "rri_i12"]
