"""The relay's batch: what it marks sent out of what the broker answered. Pure: no broker here (the
relay's runs against one are in the other tests of this folder)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from aiokafka.errors import KafkaTimeoutError

from gateway.bus.relay import _in_key_order
from gateway.store.outbox import OutboxRow


class Ack(NamedTuple):
    partition: int
    offset: int


def row(seq: int, key: str) -> OutboxRow:
    return OutboxRow(seq, f"e{seq}", f"r{seq}", "referrals.test", key, {}, "{}", 0, datetime.now(UTC))


def test_a_row_the_broker_did_not_acknowledge_is_not_marked_nor_the_later_rows_of_its_key() -> None:
    rows = [row(1, "A"), row(2, "B"), row(3, "A"), row(4, "B"), row(5, "A")]
    results = [Ack(0, 10), Ack(1, 20), KafkaTimeoutError(), Ack(1, 21), Ack(0, 11)]
    done, failed = _in_key_order(rows, results)
    assert [(r.seq, p, o) for r, p, o in done] == [(1, 0, 10), (2, 1, 20), (4, 1, 21)]
    assert [r.seq for r in failed] == [3, 5], "acknowledged, but after its key's failure: sent again, in order"


def test_every_acknowledged_row_is_marked_where_the_broker_put_it() -> None:
    rows = [row(1, "A"), row(2, "A")]
    done, failed = _in_key_order(rows, [Ack(2, 7), Ack(2, 8)])
    assert [(r.seq, p, o) for r, p, o in done] == [(1, 2, 7), (2, 2, 8)] and failed == []
