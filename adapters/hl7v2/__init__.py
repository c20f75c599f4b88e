"""HL7 v2, both ways: one codec shared by the inbound and outbound adapters.

    in:  text --parser--> Message --header.check--> ref_i12 / rri_i12 (patient, providers, clinical,
         datatypes) --> InboundReferral / status           ack: AA / AE / AR (CA / CE / CR) with ERR
    out: canonical ServiceRequest / Task --encode (encode_datatypes)--> writer --> REF^I12 / RRI^I12

Code tables, identifier rules and the profile (versions, message types) are data in schemas/hl7v2,
loaded by `tables.load`. Must not: do I/O (gateway/mllp, adapters/mllp and adapters/outbound do), route,
store or commit.
"""
