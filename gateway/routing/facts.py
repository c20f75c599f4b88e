"""What routing rules and acceptance criteria can know about a referral, read once from the
canonical ServiceRequest.

Coded facts are sets of codes (any code system: rules name codes only):

    performer  ServiceRequest.performer ODS codes
    category   ServiceRequest.category (also carries flags such as `complex-case`)
    code       ServiceRequest.code: the service or procedure asked for
    reason     ServiceRequest.reasonCode, and the code of each Condition in reasonReference
    priority   ServiceRequest.priority (`routine` when absent)
    source     the UK Core SourceOfServiceRequest extension
    history    the code of each Procedure in supportingInfo: what the patient has already had
    dos        the DoS service ids of the HealthcareServices the performer names (NHSD-Target-Identifier
               or the ServiceRequest's own)
    service    the directory ids of the services the performer names (the router looks them up)

Conditions and Procedures are read from the ServiceRequest's `contained` resources (`#id`
references), so an event stays self-contained. Dates are compared with `authoredOn`, never with
today, so a decision is the same whenever it is replayed. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.canonical import referral, systems

Fact = Literal["performer", "category", "code", "reason", "priority", "source", "history", "dos", "service"]

#: Where each fact is read from, for the issues a referrer gets back.
WHERE: dict[Fact, str] = {
    "performer": "ServiceRequest.performer",
    "category": "ServiceRequest.category",
    "code": "ServiceRequest.code",
    "reason": "ServiceRequest.reasonCode",
    "priority": "ServiceRequest.priority",
    "source": "ServiceRequest.extension",
    "history": "ServiceRequest.supportingInfo",
    "dos": "ServiceRequest.performer",
    "service": "ServiceRequest.performer",
}
#: Procedures in these statuses did not happen, so they are no part of the history.
_NOT_DONE = {"not-done", "entered-in-error", "preparation"}
T = TypeVar("T")


@dataclass(frozen=True)
class ConditionFact:
    codes: frozenset[str]
    onset: date | None
    severity: frozenset[str]


@dataclass(frozen=True)
class ProcedureFact:
    codes: frozenset[str]
    outcome: frozenset[str]


@dataclass(frozen=True)
class Facts:
    coded: dict[Fact, frozenset[str]]
    conditions: tuple[ConditionFact, ...]
    procedures: tuple[ProcedureFact, ...]
    authored: date | None
    named: tuple[tuple[str, str], ...] = ()  # (system, value) of each service the performer names

    def __getitem__(self, fact: Fact) -> frozenset[str]:
        return self.coded[fact]


def read_facts(sr: ServiceRequest) -> Facts:
    conditions = tuple(_condition(c) for c in _contained(sr, sr.reasonReference, Condition))
    procedures = tuple(_procedure(p) for p in _contained(sr, sr.supportingInfo, Procedure) if p.status not in _NOT_DONE)
    performer = referral.performer_ods(sr)
    source = referral.source_of_referral(sr)
    named = tuple(referral.named_services(sr))
    coded: dict[Fact, frozenset[str]] = {
        "performer": frozenset([performer] if performer else []),
        "category": frozenset(referral.codes(sr.category)),
        "code": frozenset(referral.codes(sr.code)),
        "reason": frozenset(referral.codes(sr.reasonCode)).union(*(c.codes for c in conditions)),
        "priority": frozenset([str(sr.priority or "routine")]),
        "source": frozenset([source] if source else []),
        "history": frozenset().union(*(p.codes for p in procedures)),
        "dos": frozenset(value for system, value in named if system == systems.DOS_SERVICE_ID),
        "service": frozenset(value for system, value in named if system == systems.SERVICE_ID),
    }
    return Facts(coded, conditions, procedures, _day(sr.authoredOn), named)


def _contained(sr: ServiceRequest, references: list[Any] | None, kind: type[T]) -> list[T]:
    by_id = {f"#{r.id}": r for r in sr.contained or [] if isinstance(r, kind)}
    return [by_id[ref.reference] for ref in references or [] if ref.reference in by_id]


def _condition(condition: Condition) -> ConditionFact:
    onset = condition.onsetDateTime or (condition.onsetPeriod.start if condition.onsetPeriod else None)
    return ConditionFact(
        codes=frozenset(referral.codes(condition.code)),
        onset=_day(onset),
        severity=frozenset(referral.codes(condition.severity)),
    )


def _procedure(procedure: Procedure) -> ProcedureFact:
    return ProcedureFact(
        codes=frozenset(referral.codes(procedure.code)), outcome=frozenset(referral.codes(procedure.outcome))
    )


def _day(value: date | datetime | None) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    return value
