"""The relay's watch on the broker's log: which topics a broker lost records of. Pure: no broker."""

from __future__ import annotations

from aiokafka import TopicPartition

from gateway.bus.log_ends import LogEnds

MSK0, MSK1 = TopicPartition("referrals.msk-pain", 0), TopicPartition("referrals.msk-pain", 1)
RETRY0 = TopicPartition("referrals.retry", 0)
ALL = {"referrals.msk-pain": {0, 1}, "referrals.retry": {0}}


def test_batches_further_along_the_log_lose_nothing() -> None:
    log = LogEnds()
    assert log.acknowledged([(MSK0, 0), (MSK0, 1), (MSK1, 0)]) == set()
    assert log.acknowledged([(MSK0, 2), (MSK1, 1), (RETRY0, 0)]) == set()


def test_a_batch_acknowledged_below_where_the_log_had_reached_starts_a_new_log() -> None:
    log = LogEnds()
    log.acknowledged([(MSK0, 7), (MSK0, 8), (RETRY0, 3)])
    assert log.acknowledged([(MSK0, 0), (RETRY0, 4)]) == {"referrals.msk-pain"}
    assert log.acknowledged([(MSK0, 1)]) == set(), "the new log is the one watched from then on"


def test_a_log_ending_at_the_start_of_its_last_batch_is_whole() -> None:
    log = LogEnds()
    log.acknowledged([(MSK0, 10), (MSK0, 11), (MSK0, 12)])  # Tansu then reports the log's end as 11
    assert log.shorter(ALL, {MSK0: 11}) == set()


def test_a_log_ending_before_the_latest_batch_or_a_partition_gone_lost_records() -> None:
    log = LogEnds({MSK0: 11, MSK1: 4, RETRY0: 2})
    assert log.shorter(ALL, {MSK0: 11, MSK1: 4, RETRY0: 2}) == set()
    assert log.shorter(ALL, {MSK0: 0, MSK1: 4, RETRY0: 2}) == {"referrals.msk-pain"}, "restarted empty"
    fewer = {"referrals.msk-pain": {0}, "referrals.retry": {0}}  # made again with fewer partitions
    assert log.shorter(fewer, {MSK0: 11, RETRY0: 2}) == {"referrals.msk-pain"}
    assert log.shorter({"referrals.msk-pain": {0, 1}}, {MSK0: 11, MSK1: 4}) == {"referrals.retry"}, "topic gone"


def test_a_forgotten_topic_is_watched_again_from_its_next_batch() -> None:
    log = LogEnds({MSK0: 11, RETRY0: 2})
    log.forget({"referrals.msk-pain"})
    assert log.partitions() == [RETRY0]
    assert log.acknowledged([(MSK0, 0)]) == set()
    assert log.shorter(ALL, {MSK0: 1, RETRY0: 2}) == set()
