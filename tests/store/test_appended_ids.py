"""The ids of rows the store only appends (outbox events, inbound messages, audit records) are made in
time order, so each table's unique index on them grows at its end: one tail page per commit, not a
random leaf per row. A referral's commit had written about a fifth more pages for random UUIDs."""

from __future__ import annotations

import uuid

from gateway.bus.events import new_event
from gateway.inbound_log.arrival import Arrival
from gateway.store.rows import appended_id


def test_appended_ids_grow_in_the_order_they_were_made_even_within_one_millisecond() -> None:
    made = [appended_id() for _ in range(20_000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made), "each id sorts after the one made before it"
    assert {uuid.UUID(i).version for i in made} == {7}


def test_events_and_inbound_messages_take_time_ordered_ids() -> None:
    first = new_event(
        topic="t", key="k", event_type="e", source="s", subject="x", value="{}", correlation_id="c"
    ).event_id
    arrival = Arrival(channel="hl7v2-mllp", raw=b"MSH|")
    assert uuid.UUID(first).version == uuid.UUID(arrival.id).version == 7
    assert first < arrival.id
