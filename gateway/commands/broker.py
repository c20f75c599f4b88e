"""`topics`, `lag` and `tail`: what the broker holds, how far each consumer group has read, and a
topic's events as they arrive (masked unless the settings allow otherwise).

`tail` exists because librdkafka tools (kcat) cannot read the embedded Tansu broker: it is the
gateway's own way to read a topic, against the embedded broker or a configured cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from fastapi.encoders import jsonable_encoder

from gateway.bus.kafka_config import client_options
from gateway.bus.topics import load_topics
from gateway.commands.common import print_json
from gateway.monitoring import access
from gateway.monitoring.broker_view import BrokerSnapshot, BrokerView, gateway_groups
from gateway.monitoring.browser import message, must_exist
from gateway.settings import Settings


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = sub.add_parser("topics", help="the gateway's topics: partitions, end offsets and what each carries")
    topics.add_argument("--json", action="store_true", help="one JSON object per topic")
    topics.set_defaults(func=_topics)
    lag = sub.add_parser("lag", help="each consumer group's committed offsets and lag, per topic and partition")
    lag.add_argument("--json", action="store_true", help="one JSON object per group and topic")
    lag.set_defaults(func=_lag)
    tail = sub.add_parser("tail", help="print a topic's events as JSON lines (key, headers, value), masked")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest event, not the newest")
    tail.add_argument("--max", type=int, default=0, help="stop after this many events (0: run until Ctrl-C)")
    tail.add_argument("--timeout", type=float, default=0, help="stop after this many idle seconds (0: never)")
    tail.add_argument("--unmasked", action="store_true", help="show patient identifiers (only where allowed)")
    tail.set_defaults(func=_tail)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    specs = load_topics(settings.schemas_dir)
    snapshot = asyncio.run(_snapshot(settings))
    for note in snapshot.notes:
        print(f"note: {note}", file=sys.stderr)
    for spec in specs:
        found = snapshot.topic(spec.name)
        ends = {p.partition: p.end for p in found.partitions} if found else {}
        if args.json:
            print_json(
                {"topic": spec.name, "partitions": spec.partitions, "end_offsets": ends, "purpose": spec.purpose}
            )
            continue
        written = f"{found.end:>8} written" if found else "     not on the broker"
        offsets = " ".join(f"{p}:{end}" for p, end in ends.items())
        print(f"{spec.name:28} {spec.partitions:3} partitions {written}  [{offsets}]  {spec.purpose}")
    return 0 if snapshot.reachable else 2


def _lag(args: argparse.Namespace, settings: Settings) -> int:
    snapshot = asyncio.run(_snapshot(settings))
    for note in snapshot.notes:
        print(f"note: {note}", file=sys.stderr)
    if snapshot.reachable and not snapshot.groups:
        print("no consumer group has committed an offset on the gateway's topics yet")
    for group in snapshot.groups:
        if args.json:
            print_json({**asdict(group), "lag": group.lag})  # the total is a property, not a field
            continue
        parts = " ".join(
            f"{p.partition}:{'-' if p.committed is None else p.committed}/{p.end}" for p in group.partitions
        )
        print(f"{group.group:40} {group.topic:28} lag {group.lag:>6}  [{parts}]")
    return 0 if snapshot.reachable else 2


def _committed(offset: int | None) -> str:
    return "-" if offset is None else str(offset)


async def _snapshot(settings: Settings) -> BrokerSnapshot:
    names = [t.name for t in load_topics(settings.schemas_dir)]
    view = BrokerView(settings.kafka, names, gateway_groups(settings))
    try:
        return await view.snapshot()
    finally:
        await view.close()


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    if args.unmasked and not access.may_unmask(settings.monitor):
        print("referral-gateway: unmasked output is not allowed here (MONITOR_UNMASKED_ALLOWED)", file=sys.stderr)
        return 2
    return asyncio.run(_tail_async(args, settings))


async def _tail_async(args: argparse.Namespace, settings: Settings) -> int:
    await must_exist(settings.kafka, args.topic)
    consumer = AIOKafkaConsumer(
        args.topic,
        **client_options(settings.kafka),
        enable_auto_commit=False,
        auto_offset_reset="earliest" if args.from_beginning else "latest",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        print(f"referral-gateway: Kafka at {settings.kafka.servers} did not answer: {exc}", file=sys.stderr)
        return 2
    try:
        return await _print_events(consumer, args.max, args.timeout, args.unmasked)
    finally:
        await consumer.stop()


async def _print_events(consumer: AIOKafkaConsumer, limit: int, idle_timeout: float, unmasked: bool) -> int:
    seen = 0
    while not limit or seen < limit:
        batch = await consumer.getmany(timeout_ms=int(idle_timeout * 1000) if idle_timeout else 1000)
        if not batch and idle_timeout:
            break
        for record in (r for records in batch.values() for r in records):
            print(json.dumps(jsonable_encoder(message(record, unmasked))), flush=True)
            seen += 1
            if limit and seen >= limit:
                break
    return 0
