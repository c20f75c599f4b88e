"""The hazard log (schemas/safety/hazards.json) is held to the code: every hazard has a control, every
control names code that exists and tests that pytest collects and does not skip in the default run.
The check itself is shown to fail on each kind of broken control."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.safety.hazards import SCHEMA_FILE, HazardLog, Rating, json_schema, load_hazard_log, problems, risk_of
from gateway.settings import SCHEMAS_DIR
from tests.safety.collection import collected

LOG = load_hazard_log(SCHEMAS_DIR)
#: The hazards every version of the log must cover (the clinical safety issue lists them).
REQUIRED = {
    "H01": "Referral lost",
    "H02": "Referral duplicated at the receiver",
    "H03": "Routed to the wrong service",
    "H04": "Wrong patient, from a mis-mapped identifier",
    "H05": "Clinical content lost or altered in translation",
    "H06": "Urgent referral delayed",
    "H07": "A refusal the sender never learns of",
    "H08": "Status never returned to the referrer",
    "H09": "Patient data exposed to the wrong organisation or in logs",
    "H10": "Configuration change (directory or rules) misroutes referrals",
    "H11": "The embedded broker loses its log",
}
SAMPLE_TESTS = """
import pytest

def test_runs():
    pass

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

@pytest.mark.skipif(True, reason="never here")
def test_skipped_if():
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_cases(n):
    pass
"""


@pytest.fixture(scope="module")
def suite() -> dict[str, str | None]:
    return collected()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    root = tmp_path_factory.mktemp("sample-suite")
    (root / "test_sample.py").write_text(SAMPLE_TESTS)
    (root / "test_broken.py").write_text("import a_module_that_is_not_there\n\ndef test_hidden():\n    pass\n")
    return collected(root)


def broken(log: HazardLog, hazard: str, **control: object) -> HazardLog:
    """The log with the first control of `hazard` changed."""
    data = log.model_dump()
    target = next(h for h in data["hazards"] if h["id"] == hazard)
    target["controls"][0].update(control)
    return HazardLog.model_validate(data)


def test_the_log_covers_every_hazard_the_issue_names() -> None:
    assert {h.id: h.title for h in LOG.hazards if h.id in REQUIRED} == REQUIRED


def test_every_control_names_code_that_exists_and_tests_the_default_run_runs(suite: dict[str, str | None]) -> None:
    assert len(suite) > 400  # the whole suite was collected, not a part of it
    assert problems(LOG, suite) == []


def test_a_hazard_without_a_control_fails_the_check(suite: dict[str, str | None]) -> None:
    data = LOG.model_dump()
    data["hazards"][0]["controls"] = []
    assert problems(HazardLog.model_validate(data), suite) == ["H01 has no control"]


def test_a_control_naming_a_test_that_does_not_exist_fails_the_check(suite: dict[str, str | None]) -> None:
    gone = "tests/delivery/test_delivery_flow.py::test_a_referral_is_never_lost_honest"
    found = problems(broken(LOG, "H01", tests=[gone]), suite)
    assert found == [f"H01-C1: test {gone} does not exist (pytest does not collect it)"]


def test_a_control_naming_a_test_skipped_by_a_marker_fails_the_check(sample: dict[str, str | None]) -> None:
    assert sample["test_sample.py::test_runs"] is None
    log = broken(
        LOG,
        "H02",
        code=["gateway/canonical/referral.py:referral_id_for"],
        tests=["test_sample.py::test_runs", "test_sample.py::test_skipped", "test_sample.py::test_skipped_if"],
    )
    found = [p for p in problems(log, sample) if p.startswith("H02-C1")]
    assert found == [
        "H02-C1: test test_sample.py::test_skipped is skipped in the default run: skip marker: not today",
        "H02-C1: test test_sample.py::test_skipped_if is skipped in the default run: skip marker: never here",
    ]


def test_a_control_naming_a_test_in_a_module_that_fails_to_collect_fails_the_check(
    sample: dict[str, str | None],
) -> None:
    found = problems(broken(LOG, "H06", tests=["test_broken.py::test_hidden"]), sample)
    assert [p for p in found if p.startswith("H06-C1")] == [
        "H06-C1: test test_broken.py::test_hidden does not exist (the module fails to collect)"
    ]


def test_a_parametrised_test_is_named_by_its_function_or_by_one_case(sample: dict[str, str | None]) -> None:
    log = broken(LOG, "H03", tests=["test_sample.py::test_cases", "test_sample.py::test_cases[2]"])
    assert [p for p in problems(log, sample) if p.startswith("H03-C1")] == []


def test_a_control_naming_code_that_is_missing_fails_the_check(suite: dict[str, str | None]) -> None:
    log = broken(
        LOG,
        "H04",
        code=["gateway/canonical/ukcore.py:validate_harder", "gateway/nowhere.py:Thing", "gateway/intake.py"],
    )
    found = [p for p in problems(log, suite) if p.startswith("H04-C1")]
    missing = "gateway/canonical/ukcore.py:validate_harder: gateway.canonical.ukcore has no validate_harder"
    assert found[0] == f"H04-C1: code {missing}"
    assert found[1].startswith("H04-C1: code gateway/nowhere.py:Thing: the module does not import")
    assert found[2] == "H04-C1: 'gateway/intake.py' is not written as path/to/module.py:Symbol"
    assert len(found) == 3


def test_a_control_naming_no_code_or_no_test_fails_the_check(suite: dict[str, str | None]) -> None:
    found = problems(broken(LOG, "H05", code=[], tests=[]), suite)
    assert found == ["H05-C1: names no code", "H05-C1: names no test"]


def test_a_risk_the_matrix_does_not_give_is_refused() -> None:
    assert risk_of("Catastrophic", "Medium") == 4 and risk_of("Minor", "Very low") == 1
    with pytest.raises(ValidationError, match="medium likelihood is risk 4 on the matrix, not 2"):
        Rating(severity="Catastrophic", likelihood="Medium", risk=2)


def test_the_json_schema_beside_the_log_is_current() -> None:
    path: Path = SCHEMAS_DIR / SCHEMA_FILE
    assert path.read_text() == json_schema(), "run `make safety-case` to write the schema again"
