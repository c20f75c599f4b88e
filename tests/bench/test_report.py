"""The benchmark report's verdicts: a figure beside its target, and a summary that claims no more
than was measured."""

from __future__ import annotations

import pytest

from bench.report import Report


def test_a_missed_target_is_named_in_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    report = Report()
    report.figure("referrals a second", 456, "/s", (">=", 1000))
    report.figure("p99", 8.4, "ms", ("<=", 10))
    report.summary()
    out = capsys.readouterr().out
    assert "target >= 1,000/s: MISSED" in out
    assert "target <= 10ms: met" in out
    assert out.splitlines()[-1] == "missed: referrals a second: 456/s (target >= 1,000/s)"


def test_every_target_met_only_when_one_was_checked(capsys: pytest.CaptureFixture[str]) -> None:
    met = Report()
    met.figure("p99", 8.4, "ms", ("<=", 10))
    met.summary()
    assert capsys.readouterr().out.splitlines()[-1] == "every target met"

    unchecked = Report()
    unchecked.figure("ratio", 21.9, "x")
    unchecked.summary()
    assert capsys.readouterr().out.splitlines()[-1] == "no figure with a target was measured"


def test_a_figure_the_run_could_not_produce_is_a_miss(capsys: pytest.CaptureFixture[str]) -> None:
    report = Report()
    report.unmeasured("HL7 v2 end to end", "not every event was read back")
    report.summary()
    assert capsys.readouterr().out.splitlines()[-1] == "missed: HL7 v2 end to end: not every event was read back"
