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


def test_a_fractional_target_is_shown_as_it_is_set(capsys: pytest.CaptureFixture[str]) -> None:
    report = Report()
    report.figure("CPU per message", 0.81, " ms", ("<=", 0.7))
    report.summary()
    out = capsys.readouterr().out
    assert "target <= 0.7 ms: MISSED" in out
    assert out.splitlines()[-1] == "missed: CPU per message: 0.81 ms (target <= 0.7 ms)"


def test_figures_are_kept_by_name_for_later_targets() -> None:
    report = Report()
    report.figure("delivery to a FHIR REST receiver, events per second", 900, "/s")
    report.figure("delivery to an HL7 v2 MLLP receiver, events per second", 1100, "/s")
    report.figure("HL7 v2 messages end to end", 1000, "/s")
    assert set(report.value("delivery to ").values()) == {900, 1100}
