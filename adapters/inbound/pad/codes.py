"""The pad's code tables (schemas/pad/), loaded into typed models: what each answer means in SNOMED CT,
and the source-of-referral codes IAPT services report on (SNOMED CT and the IAPT Data Set's own).

Must not: decide which source applies (mapping.py does, from the answers).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel


class Code(BaseModel):
    code: str
    display: str


class AnswerCodes(BaseModel):
    answer_system: str
    category: Code
    code: Code
    service_type_system: str
    pathways: dict[str, Code | None]  # pad pathway answer → the directory's service type (None: core IAPT)
    reasons: dict[str, list[Code]]
    positive_risk_screen: Code


class Source(BaseModel):
    id: str
    snomed: Code
    iapt: Code
    reasoning: str


class SourcesOfReferral(BaseModel):
    iapt_system: str
    sources: list[Source]

    def source(self, source_id: str) -> Source:
        for source in self.sources:
            if source.id == source_id:
                return source
        raise KeyError(f"no source of referral '{source_id}' in schemas/pad/source-of-referral.json")


@cache
def answer_codes(schemas_dir: Path) -> AnswerCodes:
    return AnswerCodes.model_validate(json.loads((schemas_dir / "pad" / "answer-codes.json").read_text()))


@cache
def sources_of_referral(schemas_dir: Path) -> SourcesOfReferral:
    return SourcesOfReferral.model_validate(json.loads((schemas_dir / "pad" / "source-of-referral.json").read_text()))
