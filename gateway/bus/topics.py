"""Topic definitions (from schemas/topics.json) and making sure the broker has them."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import BaseModel

from gateway.bus.kafka_config import client_options
from gateway.errors import BrokerUnavailable
from gateway.settings import KafkaSettings

log = logging.getLogger(__name__)


class TopicSpec(BaseModel):
    name: str
    role: str | None = None  # the part it plays: the settings name topics by it (settings.topic_roles)
    partitions: int
    purpose: str


def load_topics(schemas_dir: Path) -> list[TopicSpec]:
    data = json.loads((schemas_dir / "topics.json").read_text())
    return [TopicSpec.model_validate(t) for t in data["topics"]]


async def ensure_topics(kafka: KafkaSettings, topics: list[TopicSpec]) -> list[str]:
    """Create the topics the broker lacks; returns the names created."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            await _create(admin, missing, kafka.replicas)
        return [t.name for t in missing]
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {kafka.servers} did not answer: {exc}") from exc
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, topics: list[TopicSpec], replicas: int) -> None:
    new = [NewTopic(t.name, t.partitions, replicas) for t in topics]
    try:
        await admin.create_topics(new)
    except TopicAlreadyExistsError:
        pass  # another gateway process created it first
    log.info("created topics %s", ", ".join(t.name for t in topics))


async def broker_answers(kafka: KafkaSettings, timeout_s: float = 2.0) -> bool:
    """True when the cluster returns metadata within the time-out (for readiness checks)."""
    admin = AIOKafkaAdminClient(**{**client_options(kafka), "request_timeout_ms": int(timeout_s * 1000)})
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            await admin.list_topics()
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()
    return True
