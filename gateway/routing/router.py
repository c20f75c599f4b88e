"""The router: the first matching rule names a service; that service's acceptance criteria then
accept the referral, send it to the service's triage, or return it to the referrer with the reasons.

    ServiceRequest ─▶ facts ─▶ first matching rule ─▶ criteria ─▶ RouteDecision
                                    │ none                 │ any "return" failed
                                    ▼                      ▼
                             UnroutableReferral     UnroutableReferral (one Issue per criterion)

`Router.route` is pure and deterministic. `load_router` refuses rules, criteria and directory that
do not fit together (an unknown service, topic or ODS code), so a bad deployment fails at start-up,
not on a patient's referral.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from fhir.resources.R4B.servicerequest import ServiceRequest

from gateway.bus.topics import load_topics
from gateway.canonical import systems
from gateway.errors import Issue, UnroutableReferral
from gateway.routing.criteria import CriteriaBook, Criterion, Finding, Publisher, assess, load_criteria
from gateway.routing.directory import Directory, load_directory
from gateway.routing.facts import WHERE, Facts, read_facts
from gateway.routing.rules import Rule, RuleSet, load_rules


@dataclass(frozen=True)
class RouteDecision:
    topic: str
    service: str
    rule: str
    reason: str
    ruleset_version: str
    triage: bool = False


class Router:
    def __init__(self, rules: RuleSet, criteria: CriteriaBook, directory: Directory) -> None:
        self.rules = rules
        self.criteria = criteria
        self.directory = directory
        self.version = f"rules {rules.version}, criteria {criteria.version}"
        self._applicable = _applicable_criteria(criteria, directory)

    def route(self, sr: ServiceRequest) -> RouteDecision:
        facts = self._with_services(read_facts(sr))
        rule = self.rules.first_match(facts)
        if rule is None:
            raise self._unroutable(facts)
        findings = assess(self._applicable.get(rule.service, []), facts)
        returned = [f for f in findings if f.action == "return"]
        if returned:
            raise self._returned(rule, returned)
        if findings:
            return self._triage(rule, facts, findings)
        return RouteDecision(rule.topic, rule.service, rule.id, self._accepted(rule, facts), self.version)

    def _with_services(self, facts: Facts) -> Facts:
        """The facts with the directory ids of the services the performer names. A named service the
        directory does not list, or one another organisation provides, is refused: never guessed."""
        issues, ids = [], set(facts["service"])
        for system, value in facts.named:
            service = self.directory.by_identifier(system, value)
            if service is None:
                issues.append(
                    Issue(
                        f"the referral is addressed to the service {system}|{value}, which the service directory "
                        f"does not list ({self.directory.version}); it was not sent anywhere else",
                        WHERE["service"],
                        "not-found",
                    )
                )
            elif facts["performer"] and service.ods not in facts["performer"]:
                issues.append(
                    Issue(
                        f"the service {value} is {service.name}, provided by {service.ods}, but the referral is "
                        f"addressed to {', '.join(sorted(facts['performer']))}",
                        WHERE["service"],
                        "business-rule",
                    )
                )
            else:
                ids.add(service.id)
        if issues:
            raise UnroutableReferral("the service this referral is addressed to is not known here", *issues)
        return replace(facts, coded={**facts.coded, "service": frozenset(ids)})

    def _accepted(self, rule: Rule, facts: Facts) -> str:
        met = [criterion.id for _, criterion in self._applicable.get(rule.service, [])]
        return rule.reason(facts) + (f"; meets acceptance criteria {', '.join(met)}" if met else "")

    def _triage(self, rule: Rule, facts: Facts, findings: list[Finding]) -> RouteDecision:
        publisher = findings[0].publisher
        why = "; ".join(f"{f.reason} [{f.criterion.id}]" for f in findings)
        reason = f"{rule.reason(facts)}; sent to {self.directory.service(publisher.triage).name} for triage: {why}"
        return RouteDecision(self.criteria.triage_topic, publisher.triage, rule.id, reason, self.version, triage=True)

    def _returned(self, rule: Rule, findings: list[Finding]) -> UnroutableReferral:
        issues = [Issue(f"{f.reason} ({self._cited(f)})", f.where, "business-rule") for f in findings]
        return UnroutableReferral(f"{self.directory.service(rule.service).name} does not accept this referral", *issues)

    def _cited(self, finding: Finding) -> str:
        publisher = self.directory.service(finding.publisher.service).name
        return f'acceptance criterion {finding.criterion.id} of {publisher}: "{finding.criterion.published}"'

    def _unroutable(self, facts: Facts) -> UnroutableReferral:
        where = "ServiceRequest.performer.identifier.value"
        issues = []
        for ods in sorted(facts["performer"]):
            name = self.directory.organisation_name(ods)
            if name is None:
                issues.append(Issue(f"no service takes performer {ods}: it is not in the service directory", where))
            else:
                issues.append(Issue(f"{name} ({ods}) takes no referral like this one ({self.version})", where))
        if not issues:
            issues.append(Issue(f"no routing rule matches this referral ({self.version})", "ServiceRequest"))
        return UnroutableReferral("no service takes this referral", *issues)


def load_router(schemas_dir: Path) -> Router:
    """Rules, criteria and directory from `schemas_dir`, checked against each other."""
    rules, criteria, directory = load_rules(schemas_dir), load_criteria(schemas_dir), load_directory(schemas_dir)
    topics = {t.name for t in load_topics(schemas_dir)}
    problems = _rule_problems(rules, directory, topics) + _criteria_problems(criteria, directory, topics)
    if problems:
        raise ValueError(f"routing configuration in {schemas_dir} does not fit together: " + "; ".join(problems))
    return Router(rules, criteria, directory)


def _rule_problems(rules: RuleSet, directory: Directory, topics: set[str]) -> list[str]:
    problems = _duplicates("rule", [r.id for r in rules.rules])
    for rule in rules.rules:
        if rule.service not in directory:
            problems.append(f"rule {rule.id} names service '{rule.service}', which the directory does not list")
        if rule.topic not in topics:
            problems.append(f"rule {rule.id} names topic '{rule.topic}', which topics.json does not list")
        unknown = [ods for ods in rule.when.get("performer", []) if not directory.organisation_name(ods)]
        if unknown:
            problems.append(f"rule {rule.id} names performers {', '.join(unknown)}, which the directory does not list")
        unknown = [s for s in rule.when.get("service", []) if s not in directory]
        unknown += [d for d in rule.when.get("dos", []) if directory.by_identifier(systems.DOS_SERVICE_ID, d) is None]
        if unknown:
            problems.append(f"rule {rule.id} names services {', '.join(unknown)}, which the directory does not list")
    return problems


def _criteria_problems(criteria: CriteriaBook, directory: Directory, topics: set[str]) -> list[str]:
    problems = _duplicates("criterion", [c.id for p in criteria.publishers for c in p.criteria])
    if criteria.triage_topic not in topics:
        problems.append(f"triage topic '{criteria.triage_topic}' is not in topics.json")
    for publisher in criteria.publishers:
        named = [publisher.service, publisher.triage]
        named += [s for c in publisher.criteria for s in c.applies_to or []]
        problems += [
            f"criteria name service '{s}', which the directory does not list" for s in named if s not in directory
        ]
    return problems


def _applicable_criteria(criteria: CriteriaBook, directory: Directory) -> dict[str, list[tuple[Publisher, Criterion]]]:
    """Service id → the criteria it is held to, in file order."""
    applicable: dict[str, list[tuple[Publisher, Criterion]]] = {}
    for publisher in criteria.publishers:
        ods = directory.service(publisher.service).ods
        default = [s.id for s in directory.by_ods(ods) if s.id != publisher.triage]
        for criterion in publisher.criteria:
            for service in criterion.applies_to or default:
                applicable.setdefault(service, []).append((publisher, criterion))
    return applicable


def _duplicates(kind: str, ids: list[str]) -> list[str]:
    return [f"{kind} id '{i}' is used more than once" for i in sorted({i for i in ids if ids.count(i) > 1})]
