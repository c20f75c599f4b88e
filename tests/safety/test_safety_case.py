"""The safety case report in docs/safety is the one the hazard log makes, and says what a deploying
organisation's Clinical Safety Officer reads first: scope, intended use, the open hazards and the
deployer's duties under DCB0160."""

from __future__ import annotations

from gateway.safety.hazards import load_hazard_log
from gateway.safety.safety_case import REPORT, render
from gateway.settings import SCHEMAS_DIR

LOG = load_hazard_log(SCHEMAS_DIR)


def test_the_safety_case_is_the_one_the_hazard_log_makes() -> None:
    assert REPORT.read_text() == render(LOG), "the hazard log changed: run `make safety-case`"


def test_the_safety_case_states_scope_use_open_hazards_and_the_deployers_duties() -> None:
    text = render(LOG)
    for heading in ("## Scope", "## Intended use", "## Open hazards", "## What the deploying organisation must do"):
        assert heading in text
    open_ids = [h.id for h in LOG.hazards if h.status == "open"]
    assert open_ids and all(f"**{i} " in text.split("## Open hazards")[1].split("## What")[0] for i in open_ids)
    assert "Keep the service directory current" in text and "gateway_wait_breaches_open" in text
    for hazard in LOG.hazards:
        assert f"### {hazard.id} {hazard.title}" in text
        assert all(c.id in text and all(t in text for t in c.tests) for c in hazard.controls)
