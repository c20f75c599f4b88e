"""aiokafka options from the settings: one place for bootstrap servers, security and durability."""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from gateway.settings import KafkaSettings


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Options every client shares (admin, producer, consumer)."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.servers,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=kafka.ssl_cafile, certfile=kafka.ssl_certfile, keyfile=kafka.ssl_keyfile
        )
    if kafka.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = kafka.sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return options


def producer_options(kafka: KafkaSettings) -> dict[str, Any]:
    """A producer that means what it says: acks=all, idempotent where the broker allows it."""
    acks: str | int = kafka.acks if kafka.acks == "all" else int(kafka.acks)
    return {
        **client_options(kafka),
        "acks": acks,
        "enable_idempotence": kafka.idempotent,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
    }


def consumer_options(kafka: KafkaSettings, group: str) -> dict[str, Any]:
    """A consumer in group `<prefix>-<group>` that commits only what the caller says is done."""
    return {
        **client_options(kafka),
        "group_id": f"{kafka.consumer_group_prefix}-{group}",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": kafka.session_timeout,
        "heartbeat_interval_ms": max(100, kafka.session_timeout // 5),
    }
