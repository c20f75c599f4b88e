"""Outbound delivery: Kafka consumer groups carry each referral event to its receiver, and each Task
change on referrals.status back to its referrer (destinations.py: both addressed by the directory).

    referral topics, referrals.status ─▶ consumer.py (offsets, due times, rebalances)
                    ─▶ deliver.py (decode → choose outbound adapter → send → record, or retry / dead letter)
                    ─▶ adapters/outbound (FHIR REST, FHIR messaging, HL7 v2 over MLLP; Kafka-only: nothing)
    failures ─▶ referrals.retry (back-off, retry.py) ─▶ … ─▶ referrals.deadletter (dead_letter.py)
    referrals.status-updates ─▶ consumer.py ─▶ status_updates.py (a receiver's Task ─▶ gateway/status.py)

One consumer loop for every group, with one set of guarantees: offsets committed only after the work,
a record read again when what failed is not its fault, dead letters in one shape (dead_letter.py).

Retry and dead-letter records go through the store's outbox, in the same transaction that records
the attempt, so an offset is committed only once what became of its event is durable.
"""
