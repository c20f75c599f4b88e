"""Two members of one delivery group over the real broker: one joins mid-stream, then the other
leaves; the receiver gets every referral accepted, and none of them twice."""

from __future__ import annotations

from pathlib import Path

from gateway.delivery.outbound import Destination
from gateway.demo_receiver import Behaviour
from tests.delivery.bench import bench
from tests.delivery.receivers import demo_receiver, eventually

BURST = 20


async def test_a_member_joining_and_one_leaving_mid_stream_loses_nothing_and_repeats_nothing(
    broker_servers: str, tmp_path: Path
) -> None:
    async with demo_receiver() as receiver, bench(broker_servers, tmp_path) as b:
        receiver.ledger.behaviour = Behaviour(delay_s=0.03)  # deliveries are in hand when the group changes
        b.destinations.known["svc"] = Destination("svc", "fhir-rest", receiver.fhir_base_url)
        hits = receiver.ledger.hits
        first = b.services[0]
        sent = [(await b.publish("svc"))[1] for _ in range(BURST)]
        await eventually(lambda: len(hits) >= 3, what="the first deliveries")
        second = await b.add_delivery()
        sent += [(await b.publish("svc"))[1] for _ in range(BURST)]
        await eventually(lambda: second.consumers[0].handled > 0, what="the second member taking a share")
        await first.stop()
        sent += [(await b.publish("svc"))[1] for _ in range(BURST)]
        await eventually(lambda: len(hits) >= len(sent), timeout=30, what="every referral delivered")
        rows = await b.recorded(sent)
    accepted = {f"{sr['identifier'][0]['system']}|{sr['identifier'][0]['value']}" for sr in sent}
    assert {h.identity for h in hits} == accepted, "nothing lost"
    assert len(hits) == len(accepted) and {h.outcome for h in hits} == {"created"}, "nothing sent twice"
    assert [r.status for r in rows] == ["delivered"] * len(sent) and {r.attempts for r in rows} == {1}
    handled = [first.consumers[0].handled, second.consumers[0].handled]
    assert min(handled) > 0, "both members did some of the work"
    assert sum(handled) == len(sent), "offsets were committed on each rebalance: no record was even read twice"
