"""The clinical safety case report (docs/safety/safety-case.md), made from the hazard log so the two
cannot drift: `make safety-case` (`python -m gateway.safety.safety_case`) writes it and the log's
JSON Schema again; a test fails when the committed report is not what the log makes.

`render(log)` is pure and deterministic (no dates: the log's version says which it is).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.safety.hazards import (
    ACCEPTABLE_RISK,
    HAZARDS_FILE,
    MATRIX,
    RISK_NAMES,
    SCHEMA_FILE,
    SEVERITIES,
    Hazard,
    HazardLog,
    json_schema,
    load_hazard_log,
)
from gateway.settings import SCHEMAS_DIR

REPORT = Path(__file__).resolve().parents[2] / "docs" / "safety" / "safety-case.md"


def render(log: HazardLog) -> str:
    parts = [
        _heading(log),
        _scope(log),
        _method(),
        _summary(log),
        _open(log),
        _deployer(log),
        "## The hazards\n",
        *(_hazard(h) for h in log.hazards),
        _evidence(),
    ]
    return "\n".join(parts).rstrip() + "\n"


def _heading(log: HazardLog) -> str:
    return (
        f"# Clinical safety case report: {log.product}\n\n"
        f"Hazard log version **{log.version}**. Made from `schemas/{HAZARDS_FILE}` by `make safety-case`: "
        "change the log, not this file. The test suite fails when this report is not what the log makes, "
        "or when any control names code or a test that does not exist "
        "(`tests/safety/test_hazard_log.py`).\n\n"
        "This is the manufacturer's report under DCB0129. A deploying organisation's Clinical Safety "
        "Officer takes it as an input to the deployment's own safety case under DCB0160.\n"
    )


def _scope(log: HazardLog) -> str:
    not_for = "\n".join(f"- {item}" for item in log.not_intended_for)
    return f"## Scope\n\n{log.scope}\n\n## Intended use\n\n{log.intended_use}\n\nIt is not intended for:\n\n{not_for}\n"


def _method() -> str:
    header = "| Likelihood | " + " | ".join(SEVERITIES) + " |"
    rule = "|---|" + "---|" * len(SEVERITIES)
    rows = [f"| {likelihood} | " + " | ".join(str(r) for r in risks) + " |" for likelihood, risks in MATRIX.items()]
    names = ", ".join(f"{n} {name}" for n, name in RISK_NAMES.items())
    return (
        "## How hazards are rated\n\n"
        "Each hazard is rated before its controls (initial) and after them (residual), by the severity of "
        "the harm and its likelihood, on the DCB0129 risk matrix:\n\n"
        + "\n".join([header, rule, *rows])
        + f"\n\nRisk: {names}. A residual risk above {ACCEPTABLE_RISK} ({RISK_NAMES[ACCEPTABLE_RISK]}) is "
        "accepted only with the deploying organisation's own controls; such hazards stay **open**.\n"
    )


def _summary(log: HazardLog) -> str:
    rows = [
        f"| {h.id} | {h.title} | {h.initial.risk} {RISK_NAMES[h.initial.risk]} | "
        f"{h.residual.risk} {RISK_NAMES[h.residual.risk]} | {len(h.controls)} | {h.status} |"
        for h in log.hazards
    ]
    table = ["| Id | Hazard | Initial risk | Residual risk | Controls | Status |", "|---|---|---|---|---|---|", *rows]
    return "## Summary\n\n" + "\n".join(table) + "\n"


def _open(log: HazardLog) -> str:
    open_ = [h for h in log.hazards if h.status == "open"]
    if not open_:
        return "## Open hazards\n\nNone.\n"
    lines = ["## Open hazards\n", "These hazards' residual risk rests on what the deploying organisation does too:\n"]
    for h in open_:
        actions = "".join(f"\n  - {a}" for a in h.deployer_actions) or " see the hazard below."
        lines.append(f"- **{h.id} {h.title}**: residual risk {h.residual.text}. The deployer must:{actions}")
    return "\n".join(lines) + "\n"


def _deployer(log: HazardLog) -> str:
    duties = "\n".join(f"- {d}" for d in log.deployer_duties)
    per_hazard = "\n".join(f"- {h.id}: {a}" for h in log.hazards for a in h.deployer_actions)
    return (
        "## What the deploying organisation must do (DCB0160)\n\n"
        f"{duties}\n\nAnd for each hazard, as its controls rely on:\n\n{per_hazard}\n"
    )


def _hazard(h: Hazard) -> str:
    lines = [
        f"### {h.id} {h.title} ({h.status})\n",
        f"- **Cause**: {h.cause}",
        f"- **Hazard**: {h.hazard}",
        f"- **Harm**: {h.harm}",
        f"- **Initial risk**: {h.initial.text}",
        f"- **Residual risk**: {h.residual.text}\n",
        "Controls:\n",
    ]
    for c in h.controls:
        code = ", ".join(f"`{ref}`" for ref in c.code)
        tests = "".join(f"\n  - `{t}`" for t in c.tests)
        lines.append(f"- **{c.id}** {c.description}\n  Implemented by {code}. Proved by:{tests}")
    return "\n".join(lines) + "\n"


def _evidence() -> str:
    return (
        "## How the log is held to the code\n\n"
        "`tests/safety/test_hazard_log.py` collects the suite with pytest's own collection and fails "
        "when a hazard has no control, when a control names a test that does not exist, fails to collect "
        "or is skipped by a marker in the default run, or names code that is missing (the module is "
        "imported and the symbol looked up). Tests of that check show it failing on each kind of broken "
        "control. `tests/safety/test_safety_case.py` fails when this report is out of date.\n"
    )


def write(schemas_dir: Path = SCHEMAS_DIR, report: Path = REPORT) -> None:
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(load_hazard_log(schemas_dir)))
    (schemas_dir / SCHEMA_FILE).write_text(json_schema())


if __name__ == "__main__":
    write()
    print(f"wrote {REPORT.relative_to(Path.cwd()) if REPORT.is_relative_to(Path.cwd()) else REPORT}", file=sys.stderr)
