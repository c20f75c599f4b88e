"""FHIR R4 inbound: RESTful ServiceRequest and BaRS-style message Bundles to the canonical referral."""
