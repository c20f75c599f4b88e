"""The HL7 v2 behaviour kept as data in schemas/hl7v2, loaded once into typed models.

    tables.json       HL7 code tables <-> FHIR codes (RF1-2 priority, RF1-1 status, sex, ...)
    identifiers.json  which CX / PLN / EI identifiers are NHS numbers, ODS codes, registrations
    profile.json      message types and versions taken, time zone, source of referral, ERR locations

Must not: read a message or build FHIR (the mapping modules do, with what this loads).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel, Field

from gateway.canonical.referral import Reason


class CodeTable(BaseModel):
    table: str
    field: str
    to_fhir: dict[str, str]
    from_fhir: dict[str, str]
    local: list[str] = Field(default_factory=list)


class CodingSystems(BaseModel):
    table: str
    to_fhir: dict[str, str]
    from_fhir: dict[str, str]
    hl7_table_prefix: str
    local_prefix: str

    def system(self, name: str) -> str | None:
        """CE-3 / CWE-3 as a FHIR system URI."""
        if not name:
            return None
        if name in self.to_fhir:
            return self.to_fhir[name]
        if name.startswith("HL7") and name[3:].isdigit():
            return f"{self.hl7_table_prefix}{name[3:]}"
        return f"{self.local_prefix}{name}"

    def name(self, system: str | None) -> str:
        """A FHIR system URI as the name of coding system written in CE-3 / CWE-3."""
        if not system:
            return ""
        if system in self.from_fhir:
            return self.from_fhir[system]
        for prefix, head in ((self.hl7_table_prefix, "HL7"), (self.local_prefix, "")):
            if system.startswith(prefix):
                return f"{head}{system[len(prefix) :]}"
        return system


class ErrorCodes(BaseModel):
    table: str
    names: dict[str, str]
    by_issue_type: dict[str, str]
    not_supported_by_location: dict[str, str]
    default: str

    def code(self, issue_type: str | None, location: str | None) -> str:
        """The HL7 table 0357 code for an issue of this FHIR issue type at this HL7 location."""
        if issue_type == "not-supported" and location in self.not_supported_by_location:
            return self.not_supported_by_location[location]
        return self.by_issue_type.get(issue_type or "", self.default)


class Tables(BaseModel):
    version: str
    referral_priority: CodeTable
    referral_status: CodeTable
    task_status: CodeTable
    administrative_sex: CodeTable
    name_type: CodeTable
    address_type: CodeTable
    telecom_use: CodeTable
    telecom_equipment: CodeTable
    observation_status: CodeTable
    coding_systems: CodingSystems
    error_codes: ErrorCodes


class NhsNumberRule(BaseModel):
    assigning_authorities: list[str]
    authority_oids: list[str]
    identifier_types: list[str]
    written_as: dict[str, str]
    status_written_as: dict[str, str]  # UK Core verification status code -> PID-32 (HL7 UK table 0445)


class Identifiers(BaseModel):
    version: str
    nhs_number: NhsNumberRule
    provider_identifier_types: dict[str, str]
    organisation_system: str
    referral_namespaces: dict[str, str]
    local_referral_prefix: str

    def provider_type(self, system: str) -> str | None:
        """The PLN-2 identifier type written for a FHIR identifier system (the first listed)."""
        return next((t for t, s in self.provider_identifier_types.items() if s == system), None)


class MessageType(BaseModel):
    structure: str
    reason: Reason


class Source(BaseModel):
    code: str
    display: str


class SourceByReferrer(Source):
    identifier_type: str
    prefix: str = ""


class SourceOfReferral(BaseModel):
    default: Source
    by_referrer: list[SourceByReferrer]


class Profile(BaseModel):
    version: str
    message_types: dict[str, MessageType]
    versions: list[str]
    processing_ids: list[str]
    local_time_zone: str
    sending_application: str
    sending_facility: str
    outbound_version: str
    source_of_referral: SourceOfReferral
    fhir_locations: dict[str, str]

    def hl7_location(self, fhir_path: str | None) -> str | None:
        """The HL7 field a ServiceRequest element came from (longest matching path), if known."""
        if not fhir_path:
            return None
        plain = _without_indexes(fhir_path)
        matches = [known for known in self.fhir_locations if plain == known or plain.startswith(f"{known}.")]
        return self.fhir_locations[max(matches, key=len)] if matches else None


def _without_indexes(path: str) -> str:
    out, depth = [], 0
    for char in path:
        depth += char == "["
        if depth == 0:
            out.append(char)
        depth -= char == "]"
    return "".join(out)


class Hl7Tables(BaseModel):
    """Everything in schemas/hl7v2, as one value the mapping functions take."""

    tables: Tables
    identifiers: Identifiers
    profile: Profile


@cache
def load(schemas_dir: Path) -> Hl7Tables:
    folder = schemas_dir / "hl7v2"
    return Hl7Tables(
        tables=Tables.model_validate(_read(folder / "tables.json")),
        identifiers=Identifiers.model_validate(_read(folder / "identifiers.json")),
        profile=Profile.model_validate(_read(folder / "profile.json")),
    )


def _read(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))
