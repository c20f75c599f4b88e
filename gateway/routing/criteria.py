"""Acceptance criteria receivers publish (schemas/routing/criteria.json), checked at the gateway.

Each criterion is one requirement with one test and the words the referrer gets back. A referral
that fails a criterion is `return`ed to the referrer with the reason, or sent to the publisher's
`triage` service (a clinician decides); never dropped. When the referral does not carry the facts
a test needs (no onset date, no outcome), the criterion's `unknown` says what happens instead.

    has-any            the fact holds at least one of `codes`
    has-none           the fact holds none of `codes`
    onset-within       a reason Condition with one of `condition` began under `months` before authoredOn
    severity           a reason Condition with one of `condition` has one of `severity`
    procedure-outcome  a previous Procedure with one of `procedure` had one of `outcome`

A criterion applies to the services in `applies_to`, by default to every service of the
publisher's organisation but its triage service. Pure: no I/O beyond loading the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.routing.facts import WHERE, ConditionFact, Fact, Facts

CRITERIA_FILE = Path("routing") / "criteria.json"
Action = Literal["return", "triage"]


class _Test(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _CodesTest(_Test):
    fact: Fact
    codes: list[str] = Field(min_length=1)

    @property
    def where(self) -> str:
        return WHERE[self.fact]


class HasAny(_CodesTest):
    test: Literal["has-any"]

    def check(self, facts: Facts) -> bool | None:
        return bool(facts[self.fact] & set(self.codes))


class HasNone(_CodesTest):
    test: Literal["has-none"]

    def check(self, facts: Facts) -> bool | None:
        return not facts[self.fact] & set(self.codes)


class OnsetWithin(_Test):
    test: Literal["onset-within"]
    condition: list[str] = Field(min_length=1)
    months: int = Field(gt=0)
    where: ClassVar[str] = "ServiceRequest.reasonReference.resolve().onset"

    def check(self, facts: Facts) -> bool | None:
        onsets = [c.onset for c in _conditions(facts, self.condition) if c.onset]
        if not onsets or facts.authored is None:
            return None
        return any(months_between(onset, facts.authored) < self.months for onset in onsets)


class Severity(_Test):
    test: Literal["severity"]
    condition: list[str] = Field(min_length=1)
    severity: list[str] = Field(min_length=1)
    where: ClassVar[str] = "ServiceRequest.reasonReference.resolve().severity"

    def check(self, facts: Facts) -> bool | None:
        stated = frozenset().union(*(c.severity for c in _conditions(facts, self.condition)))
        return bool(stated & set(self.severity)) if stated else None


class ProcedureOutcome(_Test):
    test: Literal["procedure-outcome"]
    procedure: list[str] = Field(min_length=1)
    outcome: list[str] = Field(min_length=1)
    where: ClassVar[str] = "ServiceRequest.supportingInfo.resolve().outcome"

    def check(self, facts: Facts) -> bool | None:
        done = [p for p in facts.procedures if p.codes & set(self.procedure)]
        if not done:
            return False  # never had it: the requirement is plainly not met
        outcomes = frozenset().union(*(p.outcome for p in done))
        return bool(outcomes & set(self.outcome)) if outcomes else None


Test = Annotated[HasAny | HasNone | OnsetWithin | Severity | ProcedureOutcome, Field(discriminator="test")]


class Unknown(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action
    reason: str


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    published: str  # the receiver's own words
    applies_to: list[str] | None = None
    require: Test
    otherwise: Action
    reason: str  # what the referrer is told when the requirement is not met
    unknown: Unknown | None = None  # when the referral does not say; default: as `otherwise`


class Publisher(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str  # the publishing service (directory id)
    triage: str  # the service that triages what `triage` sends it (directory id)
    criteria: list[Criterion]


class CriteriaBook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    comment: str | None = Field(default=None, alias="$comment")
    version: str
    triage_topic: str
    publishers: list[Publisher]


@dataclass(frozen=True)
class Finding:
    """A criterion the referral did not meet, and what follows."""

    criterion: Criterion
    publisher: Publisher
    action: Action
    reason: str
    where: str


def assess(applicable: list[tuple[Publisher, Criterion]], facts: Facts) -> list[Finding]:
    """Every applicable criterion the referral does not meet, in file order."""
    findings = []
    for publisher, criterion in applicable:
        verdict = criterion.require.check(facts)
        if verdict is True:
            continue
        action, reason = criterion.otherwise, criterion.reason
        if verdict is None and criterion.unknown is not None:
            action, reason = criterion.unknown.action, criterion.unknown.reason
        findings.append(Finding(criterion, publisher, action, reason, criterion.require.where))
    return findings


def months_between(start: date, end: date) -> int:
    """Whole calendar months from `start` to `end` (a month is complete on the same day of the month)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - (end.day < start.day)


def load_criteria(schemas_dir: Path) -> CriteriaBook:
    return CriteriaBook.model_validate(json.loads((schemas_dir / CRITERIA_FILE).read_text()))


def _conditions(facts: Facts, codes: list[str]) -> list[ConditionFact]:
    return [c for c in facts.conditions if c.codes & set(codes)]
