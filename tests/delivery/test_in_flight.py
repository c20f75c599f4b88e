"""Several deliveries in flight to one receiver, over a real broker to real receivers: one patient's
referrals one after another in the order published, other patients' alongside, never more at once
than `delivery.in_flight_per_receiver`, over connections kept open between deliveries."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from gateway.delivery.outbound import Destination
from tests.delivery.bench import bench
from tests.delivery.receivers import CountingReceiver, demo_receiver, eventually
from tests.samples import service_request, valid_nhs_number


def referral(nhs_number: str, note: str) -> dict[str, Any]:
    sr = {**service_request(), "id": str(uuid.uuid4()), "note": [{"text": note}]}
    sr["subject"]["identifier"]["value"] = nhs_number  # the event's key
    return sr


async def test_one_patients_referrals_arrive_one_at_a_time_in_order_while_other_patients_go_alongside(
    broker_servers: str, tmp_path: Path
) -> None:
    patients, each = [valid_nhs_number() for _ in range(6)], 5
    async with CountingReceiver(delay_s=0.05) as receiver, bench(broker_servers, tmp_path) as b:
        b.destinations.known["rx"] = Destination("rx", "fhir-rest", receiver.base_url)
        for n in range(each):
            for patient in patients:
                await b.publish("rx", sr=referral(patient, str(n)))
        await eventually(lambda: receiver.received == len(patients) * each, 60, "every referral received")
    assert receiver.overlapped == [], "never two of one patient's referrals in hand at once"
    assert receiver.arrivals == {p: [str(n) for n in range(each)] for p in patients}, "each patient's in order"
    assert receiver.most_in_hand > 1, "different patients' referrals delivered alongside"


async def test_no_more_in_flight_to_a_receiver_than_the_limit_and_its_connections_are_kept_open(
    broker_servers: str, tmp_path: Path
) -> None:
    count, limit = 40, 5  # more than the topic's 3 partitions
    async with (
        CountingReceiver(delay_s=0.05) as receiver,
        bench(broker_servers, tmp_path, in_flight_per_receiver=limit) as b,
    ):
        b.destinations.known["rx"] = Destination("rx", "fhir-rest", receiver.base_url)
        for n in range(count):
            await b.publish("rx", sr=referral(valid_nhs_number(), str(n)))
        await eventually(lambda: receiver.received == count, 60, "every referral received")
    assert receiver.most_in_hand == limit, "as many in flight as allowed, and no more"
    assert receiver.connections <= limit, "each connection kept open and reused (HTTP/1.1 keep-alive)"


async def test_several_mllp_connections_to_a_receiver_that_takes_them_each_kept_open(
    broker_servers: str, tmp_path: Path
) -> None:
    async with demo_receiver() as receiver, bench(broker_servers, tmp_path, mllp_connections_per_receiver=3) as b:
        receiver.ledger.behaviour.delay_s = 0.05  # slow enough that deliveries overlap
        b.destinations.known["mllp"] = Destination("mllp", "hl7v2-mllp", receiver.mllp_address)
        for _ in range(24):
            await b.publish("mllp")
        await eventually(lambda: len(receiver.ledger.referrals) == 24, 60, "every referral received")
    assert [h.outcome for h in receiver.ledger.hits] == ["created"] * 24, "each once"
    assert 1 < receiver.mllp_connections_accepted <= 3, "more than one connection, each reused"
