"""The hazard log as data (`schemas/safety/hazards.json`), its typed model, and the check that holds
it to the code.

Each hazard reads cause → hazard → harm, is rated on the DCB0129 risk matrix before and after its
controls, and names each control's code (`path/to/module.py:Class.method`) and the tests that prove
it (pytest node ids). The stated risk must be the one the matrix gives for the severity and the
likelihood; the model refuses a log that says otherwise.

`problems(log, collected)` is the check: every hazard has a control; every control names code that
imports and exists, and tests that pytest collects and does not skip by a marker in the default run
(`collected`: node id → None when it runs, else why not; the test suite collects it with pytest's
own collection). Pure but for importing the modules named. Must not: run the tests it names.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

HAZARDS_FILE = Path("safety") / "hazards.json"
SCHEMA_FILE = Path("safety") / "hazards.schema.json"

Severity = Literal["Minor", "Significant", "Considerable", "Major", "Catastrophic"]
Likelihood = Literal["Very low", "Low", "Medium", "High", "Very high"]
SEVERITIES: tuple[Severity, ...] = ("Minor", "Significant", "Considerable", "Major", "Catastrophic")
#: DCB0129's risk matrix: likelihood → the risk (1 to 5) for each severity, Minor to Catastrophic.
MATRIX: dict[Likelihood, tuple[int, int, int, int, int]] = {
    "Very high": (3, 4, 4, 5, 5),
    "High": (2, 3, 3, 4, 5),
    "Medium": (2, 2, 3, 3, 4),
    "Low": (1, 2, 2, 3, 4),
    "Very low": (1, 1, 2, 2, 3),
}
RISK_NAMES = {1: "Very low", 2: "Low", 3: "Medium", 4: "High", 5: "Very high"}
ACCEPTABLE_RISK = 2  # 3 and above: undesirable, accepted only with the deploying organisation's controls


def risk_of(severity: Severity, likelihood: Likelihood) -> int:
    return MATRIX[likelihood][SEVERITIES.index(severity)]


class Rating(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Severity
    likelihood: Likelihood
    risk: int = Field(ge=1, le=5)

    @model_validator(mode="after")
    def _risk_is_the_matrixs(self) -> Rating:
        expected = risk_of(self.severity, self.likelihood)
        if self.risk != expected:
            rated = f"{self.severity} with {self.likelihood.lower()} likelihood"
            raise ValueError(f"{rated} is risk {expected} on the matrix, not {self.risk}")
        return self

    @property
    def text(self) -> str:
        return f"{self.risk} ({RISK_NAMES[self.risk]}): {self.severity}, {self.likelihood.lower()} likelihood"


class Control(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^H\d{2}-C\d+$")
    description: str
    code: list[str] = Field(description="module path and symbol: gateway/intake.py:Intake.accept")
    tests: list[str] = Field(description="pytest node ids that prove the control")


class Hazard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^H\d{2}$")
    title: str
    cause: str
    hazard: str
    harm: str
    initial: Rating
    controls: list[Control]
    residual: Rating
    status: Literal["open", "closed"]  # open: the residual risk rests on what the deployer does too
    deployer_actions: list[str] = Field(default_factory=list)  # what DCB0160 asks of the deploying organisation


class HazardLog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str
    product: str
    scope: str
    intended_use: str
    not_intended_for: list[str]
    deployer_duties: list[str]  # under DCB0160, whatever the hazard
    hazards: list[Hazard]

    @model_validator(mode="after")
    def _ids_unique(self) -> HazardLog:
        ids = [h.id for h in self.hazards] + [c.id for h in self.hazards for c in h.controls]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"ids used more than once: {', '.join(repeated)}")
        return self


def load_hazard_log(schemas_dir: Path) -> HazardLog:
    return HazardLog.model_validate(json.loads((schemas_dir / HAZARDS_FILE).read_text()))


def json_schema() -> str:
    """The log's JSON Schema, as kept beside it for editors and other tools."""
    return json.dumps(HazardLog.model_json_schema(), indent=2) + "\n"


def problems(log: HazardLog, collected: Mapping[str, str | None]) -> list[str]:
    """Every way the log has drifted from the code, each as a sentence naming the hazard and control."""
    found: list[str] = []
    for hazard in log.hazards:
        if not hazard.controls:
            found.append(f"{hazard.id} has no control")
        if hazard.residual.risk > hazard.initial.risk:
            found.append(f"{hazard.id}: the residual risk is above the initial risk")
        for control in hazard.controls:
            found += [f"{control.id}: {p}" for p in _control_problems(control, collected)]
    return found


def _control_problems(control: Control, collected: Mapping[str, str | None]) -> list[str]:
    found = [] if control.code else ["names no code"]
    found += [] if control.tests else ["names no test"]
    found += [p for ref in control.code if (p := code_problem(ref))]
    found += [p for node in control.tests if (p := node_problem(node, collected))]
    return found


def code_problem(ref: str) -> str | None:
    """None when `path/module.py:Qualified.name` imports and has that symbol, else what is wrong."""
    path, _, symbol = ref.partition(":")
    if not path.endswith(".py") or not symbol:
        return f"'{ref}' is not written as path/to/module.py:Symbol"
    module_name = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        return f"code {ref}: the module does not import ({exc})"
    for part in symbol.split("."):
        if not hasattr(target, part):
            return f"code {ref}: {module_name} has no {symbol}"
        target = getattr(target, part)
    return None


def node_problem(node: str, collected: Mapping[str, str | None]) -> str | None:
    """None when pytest collects `node` (or, for a parametrised test, some case of it) and runs it."""
    cases = {k: v for k, v in collected.items() if k == node or k.startswith(node + "[")}
    if not cases:
        module = node.partition("::")[0]
        why = collected.get(module) or "pytest does not collect it"
        return f"test {node} does not exist ({why})"
    if all(why is not None for why in cases.values()):
        return f"test {node} is skipped in the default run: {next(iter(cases.values()))}"
    return None
