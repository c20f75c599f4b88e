"""HL7 v2 in: REF^I12 over MLLP to the canonical referral, and the ACKs that answer it.

    text --parser--> Message --header.check--> ref_i12 (patient, providers, clinical, datatypes)
         --> InboundReferral                      ack: AA / AE / AR (CA / CE / CR) with ERR

Code tables, identifier rules and the profile (versions, message types) are data in schemas/hl7v2,
loaded by `tables.load`. Nothing here does I/O (gateway/mllp does), routes, stores or commits.
"""
