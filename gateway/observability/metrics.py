"""Prometheus metrics, served at /metrics: counters and latency histograms at the gateway's spines.

    intake      gateway_referrals_received_total{adapter}, _accepted_total{adapter,outcome},
                gateway_intake_seconds{adapter}
    inbound log gateway_inbound_messages_total{adapter,outcome},
                gateway_inbound_refused_total{adapter,reason,sender},
                gateway_referrals_rejected_total{adapter,error}: every refusal, before the intake too
    relay       gateway_events_published_total{topic}, gateway_publish_failures_total{topic},
                gateway_outbox_to_kafka_seconds{topic} (commit to broker acknowledgement)
    status      gateway_task_status_changes_total{status,adapter}
    sampler     gateway_topic_end_offset{topic}, gateway_consumer_lag{group,topic},
                gateway_outbox_backlog, gateway_outbox_oldest_age_seconds, gateway_broker_up,
                gateway_delivery_ledger{receiver,status}, gateway_receiver_failing{receiver},
                gateway_dead_letters_open
    safety      gateway_wait_breaches_open{service,priority,status} (referrals waiting longer than their
                service's limit at a Task status, now: the wait watcher, gateway/safety/watcher.py),
                gateway_wait_breaches_total{service,priority,status} (breaches raised)

The alerting rules in deploy/prometheus/alerts.yml read these names; tests/deploy holds them to this
module, so renaming one here means changing the rules too.

Labels are adapters, topics, receivers and error classes: never an id or anything about a patient.
The spines call the small functions below; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

RECEIVED = Counter("gateway_referrals_received", "Referrals handed to the intake, by inbound adapter", ["adapter"])
ACCEPTED = Counter(
    "gateway_referrals_accepted", "Referrals committed (created) or found resent (duplicate)", ["adapter", "outcome"]
)
REJECTED = Counter(
    "gateway_referrals_rejected",
    "Inbound messages refused, before or in the intake, by error class",
    ["adapter", "error"],
)
INBOUND = Counter(
    "gateway_inbound_messages", "Inbound messages logged: accepted, duplicate, refused, failed", ["adapter", "outcome"]
)
INTAKE_SECONDS = Histogram(
    "gateway_intake_seconds", "Validate, route and commit one referral", ["adapter"], buckets=_LATENCY_BUCKETS
)
PUBLISHED = Counter("gateway_events_published", "Outbox events the broker acknowledged", ["topic"])
PUBLISH_FAILURES = Counter("gateway_publish_failures", "Outbox events the broker did not take", ["topic"])
OUTBOX_TO_KAFKA_SECONDS = Histogram(
    "gateway_outbox_to_kafka_seconds",
    "From the commit of an event to the broker's acknowledgement",
    ["topic"],
    buckets=_LATENCY_BUCKETS,
)
STATUS_CHANGES = Counter("gateway_task_status_changes", "Task status changes stored", ["status", "adapter"])
TOPIC_END_OFFSET = Gauge("gateway_topic_end_offset", "Sum of the end offsets of a topic's partitions", ["topic"])
CONSUMER_LAG = Gauge("gateway_consumer_lag", "Records a consumer group has yet to commit", ["group", "topic"])
OUTBOX_BACKLOG = Gauge("gateway_outbox_backlog", "Outbox events committed and not yet published")
DELIVERY_LEDGER = Gauge("gateway_delivery_ledger", "Deliveries kept, by receiver and state", ["receiver", "status"])
OUTBOX_OLDEST_AGE = Gauge(
    "gateway_outbox_oldest_age_seconds", "How long the oldest unpublished outbox event has waited (0: none waits)"
)
BROKER_UP = Gauge("gateway_broker_up", "Whether the broker answered the latest sample (1) or not (0)")
RECEIVER_FAILING = Gauge(
    "gateway_receiver_failing",
    "Whether a receiver's latest delivery is waiting for a retry or was given up (1) or went through (0)",
    ["receiver"],
)
DEAD_LETTERS_OPEN = Gauge("gateway_dead_letters_open", "Dead letters neither replayed nor discarded")
REFUSED = Counter(
    "gateway_inbound_refused",
    "Inbound messages refused, by inbound adapter, reason class and sender",
    ["adapter", "reason", "sender"],
)
WAIT_BREACHES_OPEN = Gauge(
    "gateway_wait_breaches_open",
    "Referrals waiting longer than their service allows at a Task status, by priority",
    ["service", "priority", "status"],
)
WAIT_BREACHES = Counter(
    "gateway_wait_breaches",
    "Wait breaches raised: a referral waited at a Task status longer than its service's limit",
    ["service", "priority", "status"],
)


def set_exactly(gauge: Gauge, values: dict[tuple[str, ...], float]) -> None:
    """Set a labelled gauge to `values`; every other label set it holds goes back to 0. A gauge sampled
    from the store shows the store's picture: a receiver whose deliveries were all pruned, or a breach
    cleared, no longer keeps its last figure for ever."""
    for family in gauge.collect():
        for sample in family.samples:
            labels = tuple(sample.labels.values())
            if labels not in values:
                gauge.labels(*labels).set(0)
    for labels, value in values.items():
        gauge.labels(*labels).set(value)


@contextmanager
def intake(adapter: str) -> Iterator[None]:
    """Count one referral through the intake and time it (its refusals are counted by the inbound log,
    with those made before the intake)."""
    RECEIVED.labels(adapter).inc()
    started = perf_counter()
    try:
        yield
    finally:
        INTAKE_SECONDS.labels(adapter).observe(perf_counter() - started)


def inbound(adapter: str, outcome: str) -> None:
    INBOUND.labels(adapter, outcome).inc()


def refused(adapter: str, reason: str, error: str, sender: str) -> None:
    """One refusal: `sender` is the sending organisation (an ODS code, MSH-4), so a feed gone wrong
    can be alerted on by itself."""
    REFUSED.labels(adapter, reason, sender or "unknown").inc()
    REJECTED.labels(adapter, error).inc()


def accepted(adapter: str, created: bool) -> None:
    ACCEPTED.labels(adapter, "created" if created else "duplicate").inc()


def published(topic: str, seconds_since_commit: float) -> None:
    PUBLISHED.labels(topic).inc()
    OUTBOX_TO_KAFKA_SECONDS.labels(topic).observe(max(seconds_since_commit, 0.0))


def publish_failed(topic: str) -> None:
    PUBLISH_FAILURES.labels(topic).inc()


def status_changed(status: str, adapter: str) -> None:
    STATUS_CHANGES.labels(status, adapter).inc()


def wait_breached(service: str, priority: str, status: str) -> None:
    WAIT_BREACHES.labels(service, priority, status).inc()


def wait_breaches_open(counts: dict[tuple[str, str, str], int]) -> None:
    """The open breaches as the store has them."""
    set_exactly(WAIT_BREACHES_OPEN, {labels: float(count) for labels, count in counts.items()})


def counter_values(counter: Counter) -> dict[tuple[str, ...], float]:
    """A counter's totals by label values (the dashboard's adapter table reads them)."""
    totals: dict[tuple[str, ...], float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                totals[tuple(sample.labels.values())] = sample.value
    return totals
