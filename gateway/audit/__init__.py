"""The audit trail: a FHIR AuditEvent for every create, read, update, delivery, replay and refusal,
appended to the store and published to `gateway.audit` through the outbox.

    context.py   who is acting and from where (set at the edge: HTTP guard, MLLP listener)
    events.py    one record → one validated R4B AuditEvent (pure)
    trail.py     AuditTrail: group-committed, append-only writes; rows for a spine's own transaction

Recorded at the shared spines: the HTTP guard (refusals), intake and status (creates, updates),
the FHIR read paths, delivery. Must not: decide what is allowed (gateway/auth does).
"""
