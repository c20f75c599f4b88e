"""After a lost log the consumer groups join again with new clients, and in an order that matters: every
old client stopped, the topics restored, and only then the new clients. A broker that makes a missing
topic on request (Tansu does, with 4 partitions) would otherwise give a new client a partition count
the restore then changes, and a client keeps the count it saw first: partitions without a reader."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.delivery.consumer import DeliveryConsumer
from tests.conftest import RunningGateway
from tests.delivery.receivers import eventually


async def test_after_a_lost_log_new_clients_start_only_once_every_old_one_stopped_and_the_topics_are_back(
    running_gateway: RunningGateway,
) -> None:
    runtime = running_gateway.runtime
    consumers: list[DeliveryConsumer] = [*runtime.delivery.consumers, runtime.status_updates]
    await runtime.delivery.joined(30)
    steps: list[tuple[str, str]] = []

    def observed(consumer: DeliveryConsumer, name: str) -> None:
        method = getattr(consumer, name)

        async def recorded() -> object:
            result = await method()
            steps.append((name, consumer.group_id))
            return result

        setattr(consumer, name, recorded)

    for consumer in consumers:
        observed(consumer, "leave")
        observed(consumer, "start")
    restore = runtime.ensure_topics

    async def restored() -> None:
        steps.append(("topics", "begun"))
        await restore()
        steps.append(("topics", "restored"))

    runtime.ensure_topics = restored  # type: ignore[method-assign]

    await runtime.log_lost({running_gateway.settings.topics.status_updates}, datetime.now(UTC))
    rejoined = 2 + 2 * len(consumers)  # the restore's two steps, each group's leave and start
    await eventually(lambda: len(steps) >= rejoined and all(c.joined.is_set() for c in consumers), 30, "joined again")
    begun, restored_at = steps.index(("topics", "begun")), steps.index(("topics", "restored"))
    left = [i for i, (name, _) in enumerate(steps) if name == "leave"]
    started = [i for i, (name, _) in enumerate(steps) if name == "start"]
    groups = {c.group_id for c in consumers}
    assert {g for name, g in steps if name == "leave"} == groups, steps
    assert {g for name, g in steps if name == "start"} == groups, steps
    assert max(left) < begun, f"a client was still running while the topics were restored: {steps}"
    assert min(started) > restored_at, f"a new client started before the topics were back: {steps}"
