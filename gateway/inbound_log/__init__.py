"""The inbound message log: every message that arrives on an inbound channel, recorded with what
became of it before the sender is answered.

    channel surface (MLLP handler, HTTP middleware, status topic)
        └─ InboundLog.receiving(Arrival) ─┬─ the intake accepts: the row goes into the referral's commit
                                          └─ otherwise: refused / failed / a Task moved, appended here

    arrival.py     what arrived and what happened to it; the refusal's reason class (pure)
    log.py         the component the surfaces call; counts every outcome in /metrics
    http.py        the HTTP surfaces' one seam (an ASGI middleware)
    resubmit.py    a logged message sent again, edited or as is, through the same surface and intake
"""
