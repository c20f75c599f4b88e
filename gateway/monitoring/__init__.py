"""The integration engineers' view of a running gateway: what Mirth Connect's dashboard gives, for a
Kafka-based gateway. The web pages (gateway/api/monitor.py) and the CLI (gateway/commands/) are two
faces of these modules:

    broker_view.py   topics, partitions, end offsets and consumer-group lag, from the broker
    sampler.py       a background component keeping an hour of samples in memory (rates, charts)
    ledger.py        outbox backlog and deliveries by receiver, from the store (receivers' health)
    overview.py      the dashboard's figures, put together
    trace.py         every hop of one referral, in order, from its history
    dead_letters.py  dead letters, and replaying or discarding them (recorded in the history)
    browser.py       a topic's messages from an offset or a time, masked
    retention.py     the pruning job
    access.py        who may unmask (masking and metrics themselves are in gateway/observability)

Must not: change a referral, or take part in intake or delivery; replaying a dead letter only puts
the original event back in the outbox, and the delivery spine does the rest.
"""
