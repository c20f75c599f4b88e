"""Prometheus metrics of the MESH hops, served at /metrics with the rest:

    gateway_mesh_messages_total{mailbox,direction,outcome}   in: accepted, duplicate, status, refused,
                                                              report; out: sent, downloaded, undeliverable
    gateway_mesh_seconds{direction}                          in: retrieve to acknowledge; out: send to downloaded
    gateway_mesh_errors_total{mailbox}                       MESH calls that failed (the loop tries again)

Labels are the gateway's own mailbox ids and outcomes: never a message id or anything about a patient.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

MESSAGES = Counter("gateway_mesh_messages", "MESH messages taken in or sent out", ["mailbox", "direction", "outcome"])
SECONDS = Histogram("gateway_mesh_seconds", "One MESH message in or out", ["direction"], buckets=_BUCKETS)
ERRORS = Counter("gateway_mesh_errors", "MESH calls that failed", ["mailbox"])


def message(mailbox: str, direction: str, outcome: str, seconds: float | None = None) -> None:
    MESSAGES.labels(mailbox, direction, outcome).inc()
    if seconds is not None:
        SECONDS.labels(direction).observe(seconds)


def error(mailbox: str) -> None:
    ERRORS.labels(mailbox).inc()
