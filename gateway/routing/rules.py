"""Routing rules as data (schemas/routing/rules.json) loaded into typed models.

A rule's `when` names referral facts (see `facts.py`: performer, category, code, reason, priority,
source, history); a condition holds when any of the referral's values is listed, and a rule matches
when all its conditions hold. The first matching rule decides the destination. Pure: no I/O beyond
loading the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from gateway.routing.facts import Fact, Facts

RULES_FILE = Path("routing") / "rules.json"


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    description: str
    when: dict[Fact, list[str]] = Field(min_length=1)
    service: str  # a HealthcareService id in the directory
    topic: str  # a topic in schemas/topics.json

    def matches(self, facts: Facts) -> bool:
        return all(facts[fact] & set(values) for fact, values in self.when.items())

    def reason(self, facts: Facts) -> str:
        """The description and the referral's values that made the rule match."""
        matched = "; ".join(
            f"{fact} {', '.join(sorted(facts[fact] & set(values)))}" for fact, values in self.when.items()
        )
        return f"{self.description} ({matched})"


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    comment: str | None = Field(default=None, alias="$comment")
    version: str
    rules: list[Rule] = Field(min_length=1)

    def first_match(self, facts: Facts) -> Rule | None:
        return next((rule for rule in self.rules if rule.matches(facts)), None)


def load_rules(schemas_dir: Path) -> RuleSet:
    return RuleSet.model_validate(json.loads((schemas_dir / RULES_FILE).read_text()))
