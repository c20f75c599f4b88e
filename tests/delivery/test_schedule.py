"""The consumer's bookkeeping: records are taken when due, one per partition, and offsets are
committed up to, never past, the first record not yet handled."""

from __future__ import annotations

from aiokafka import TopicPartition

from gateway.delivery.schedule import Progress, Rewinds, Schedule

P0, P1 = TopicPartition("referrals.retry", 0), TopicPartition("referrals.retry", 1)


def test_a_retry_due_later_does_not_block_one_due_now_on_the_same_partition() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add(P0, 10, due=500.0, item="later")
    schedule.add(P0, 11, due=100.0, item="now")
    assert schedule.take_due(now=200.0) == [(P0, 11, "now")]
    assert schedule.take_due(now=200.0) == []
    assert schedule.next_due() == 500.0


def test_events_due_at_once_come_in_offset_order_one_per_partition() -> None:
    schedule: Schedule[str] = Schedule()
    for offset in (3, 1, 2):
        schedule.add(P0, offset, 0.0, f"p0-{offset}")
    schedule.add(P1, 7, 0.0, "p1-7")
    assert sorted(schedule.take_due(1.0)) == [(P0, 1, "p0-1"), (P1, 7, "p1-7")]
    assert schedule.take_due(1.0) == [(P0, 2, "p0-2")]
    assert schedule.take_due(1.0) == [(P0, 3, "p0-3")]


def test_a_held_partition_gives_nothing_until_the_hold_ends() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add(P0, 1, 0.0, "a")
    schedule.hold(P0, until=50.0)
    assert schedule.take_due(10.0) == []
    assert schedule.next_due() == 50.0
    assert schedule.take_due(50.0) == [(P0, 1, "a")]


def test_dropping_a_revoked_partition_forgets_its_records() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add(P0, 1, 0.0, "a")
    schedule.add(P1, 1, 0.0, "b")
    schedule.drop([P0])
    assert schedule.waiting(P0) == 0 and schedule.take_due(1.0) == [(P1, 1, "b")]


def test_commit_stops_at_the_first_record_not_handled() -> None:
    progress = Progress()
    for offset in (5, 6, 7):
        progress.fetched(P0, offset)
    progress.handled(P0, 6)
    progress.handled(P0, 7)
    assert progress.committable() == {P0: 5}
    progress.committed({P0: 5})
    assert progress.committable() == {}, "nothing moved since the last commit"
    progress.handled(P0, 5)
    assert progress.committable() == {P0: 8}


def test_commit_only_for_the_partitions_asked() -> None:
    progress = Progress()
    progress.fetched(P0, 1)
    progress.fetched(P1, 4)
    progress.handled(P0, 1)
    progress.handled(P1, 4)
    assert progress.committable({P1}) == {P1: 5}
    progress.drop([P1])
    assert progress.committable() == {P0: 2}


def test_a_rewind_is_done_once_its_start_is_committed_within_one_assignment() -> None:
    rewinds = Rewinds()
    rewinds.assigned()
    rewinds.ask({"referrals.retry"})
    assert rewinds.due({P0, P1}) == {P0, P1}
    before = rewinds.assignment
    rewinds.assigned()  # the group was replacing the assignment the rewind was applied to
    rewinds.sought({P0, P1}, before)
    rewinds.committed({P0, P1}, {P0, P1}, before)
    assert rewinds.due({P0, P1}) == {P0, P1}, "the new assignment's positions may be in the lost log"
    assert rewinds.stale(P0), "no position of it is committed meanwhile"
    rewinds.sought({P0, P1}, rewinds.assignment)
    assert not rewinds.stale(P0) and rewinds.due({P0, P1}) == set()
    rewinds.committed({P0, P1}, {P0, P1}, rewinds.assignment)
    rewinds.assigned()
    assert rewinds.due({P0, P1}) == set(), "done: the next assignment starts from what was committed"


def test_a_log_lost_again_within_one_assignment_is_read_again_from_its_start() -> None:
    """The broker restarted twice while the group kept one assignment: the first rewind's seeks and
    commits were in the second lost log, so the second rewind seeks every partition again."""
    rewinds = Rewinds()
    rewinds.assigned()
    rewinds.ask({"referrals.retry"})
    rewinds.sought({P0, P1}, rewinds.assignment)
    rewinds.committed({P0}, {P0, P1}, rewinds.assignment)  # P1's start not yet committed: not done
    rewinds.ask({"referrals.retry"})
    assert rewinds.due({P0, P1}) == {P0, P1}
    rewinds.sought({P0, P1}, rewinds.assignment)
    rewinds.committed({P0, P1}, {P0, P1}, rewinds.assignment)
    assert rewinds.due({P0, P1}) == set()
    rewinds.ask({"referrals.retry"})  # and after one was done
    assert rewinds.due({P0, P1}) == {P0, P1}


def test_a_rewind_waits_for_partitions_of_its_topic() -> None:
    rewinds = Rewinds()
    rewinds.ask({"referrals.retry"})
    other = TopicPartition("referrals.msk-pain", 0)
    rewinds.committed({other}, {other}, rewinds.assignment)
    assert not rewinds.stale(other)
    assert rewinds.due({P0, other}) == {P0}


def test_a_partition_read_again_from_its_start_commits_that_start_below_the_old_offset() -> None:
    progress = Progress()
    progress.fetched(P0, 7)
    progress.handled(P0, 7)
    progress.committed(progress.committable())
    progress.restarted(P0, 0)  # the log offset 8 was in is gone
    assert progress.committable() == {P0: 0}
