"""Does a QuestionnaireResponse fit its Questionnaire? Required items answered, answers of the item's
type (and among its options), no answers where the Questionnaire has no such item or the item is
not enabled, one answer unless the item repeats.

Pure and generic: knows FHIR R4 Questionnaire semantics, nothing about the pad. Every problem is
reported at once; an issue's expression is the item's linkId (what a form field is named after) or,
for the response's own elements, a FHIRPath.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.questionnaire import QuestionnaireItem, QuestionnaireItemEnableWhen
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse, QuestionnaireResponseItem

from adapters.inbound.pad.answers import Answers, value_field
from adapters.inbound.pad.questionnaire import Pad
from gateway.errors import Issue

#: The answer value[x] each item type takes (FHIR R4 Questionnaire, item.type).
ANSWER_TYPES: dict[str, set[str]] = {
    "boolean": {"valueBoolean"},
    "decimal": {"valueDecimal"},
    "integer": {"valueInteger"},
    "date": {"valueDate"},
    "dateTime": {"valueDateTime"},
    "time": {"valueTime"},
    "string": {"valueString"},
    "text": {"valueString"},
    "url": {"valueUri"},
    "choice": {"valueCoding"},
    "open-choice": {"valueCoding", "valueString"},
    "attachment": {"valueAttachment"},
    "reference": {"valueReference"},
    "quantity": {"valueQuantity"},
}
NO_ANSWERS = {"group", "display"}
FINAL_STATUSES = {"completed", "amended"}


def check(qr: QuestionnaireResponse, pad: Pad) -> list[Issue]:
    """Every way `qr` does not fit the pad's Questionnaire (empty when it fits)."""
    checker = _Checker(pad, Answers.of(qr))
    return _header(qr, pad) + checker.items(qr.item or [], pad.questionnaire.item or [])


def _header(qr: QuestionnaireResponse, pad: Pad) -> list[Issue]:
    issues = []
    if not pad.accepts(qr.questionnaire):
        issues.append(
            Issue(
                f"questionnaire must be {pad.questionnaire.url} (optionally |{pad.version})",
                "QuestionnaireResponse.questionnaire",
                "value",
            )
        )
    if qr.status not in FINAL_STATUSES:
        issues.append(
            Issue(
                f"status '{qr.status}': only a completed response is a referral",
                "QuestionnaireResponse.status",
                "value",
            )
        )
    return issues


class _Checker:
    def __init__(self, pad: Pad, answers: Answers) -> None:
        self.pad = pad
        self.answers = answers

    def items(self, given: list[QuestionnaireResponseItem], defined: list[QuestionnaireItem]) -> list[Issue]:
        known = {str(d.linkId) for d in defined}
        issues = [
            Issue(f"'{g.linkId}' is not an item of the Questionnaire here", str(g.linkId), "structure")
            for g in given
            if g.linkId not in known
        ]
        for definition in defined:
            issues += self.item([g for g in given if g.linkId == definition.linkId], definition)
        return issues

    def item(self, matching: list[QuestionnaireResponseItem], definition: QuestionnaireItem) -> list[Issue]:
        link_id = str(definition.linkId)
        if len(matching) > 1 and not definition.repeats:
            return [Issue("given more than once; it does not repeat", link_id, "structure")]
        if not enabled(definition, self.answers):
            answered = any(g.answer or g.item for g in matching)
            return [Issue(f"only asked {self.condition(definition)}", link_id, "business-rule")] if answered else []
        if definition.type == "group":
            return self.group(matching, definition)
        return _question(matching[0] if matching else None, definition)

    def group(self, matching: list[QuestionnaireResponseItem], definition: QuestionnaireItem) -> list[Issue]:
        if not matching:
            # A required group that is missing: report each required question in it, so a form shows them all.
            return self.items([], definition.item or []) if definition.required else []
        issues = []
        for group in matching:
            if group.answer:
                issues.append(Issue("a group has items, not answers", str(definition.linkId), "structure"))
            issues += self.items(group.item or [], definition.item or [])
        return issues

    def condition(self, definition: QuestionnaireItem) -> str:
        """'when "Needs an interpreter" is yes', in the words of the Questionnaire."""
        parts = []
        for c in definition.enableWhen or []:
            question = self.pad.items.get(str(c.question))
            label = question.text if question is not None else c.question
            expected = _expected(c)
            if isinstance(expected, bool):
                wanted = "yes" if expected else "no"
            elif c.answerCoding is not None:
                wanted = self.pad.option_display(str(c.question), str(expected)) if question else str(expected)
            else:
                wanted = str(expected)
            parts.append(f"when \u201c{label}\u201d is \u201c{wanted}\u201d")
        return " or ".join(parts)


def _question(given: QuestionnaireResponseItem | None, definition: QuestionnaireItem) -> list[Issue]:
    link_id = str(definition.linkId)
    if definition.type in NO_ANSWERS:
        return (
            [Issue(f"a {definition.type} item takes no answer", link_id, "structure")] if given and given.answer else []
        )
    supplied = [a for a in (given.answer if given else None) or [] if value_field(a) is not None]
    if not supplied:
        return [Issue("an answer is required", link_id, "required")] if definition.required else []
    if given is not None and given.item:
        return [Issue("a question's sub-items belong under its answer", link_id, "structure")]
    if len(supplied) > 1 and not definition.repeats:
        return [Issue("only one answer is allowed", link_id, "structure")]
    return [issue for answer in supplied if (issue := _answer(answer, definition)) is not None]


def _answer(answer: Any, definition: QuestionnaireItem) -> Issue | None:
    link_id = str(definition.linkId)
    kind = value_field(answer)
    allowed = ANSWER_TYPES.get(str(definition.type), set())
    if kind not in allowed:
        return Issue(f"a {definition.type} item is answered with {' or '.join(sorted(allowed))}, not {kind}", link_id)
    if kind == "valueCoding" and definition.answerOption and not _is_option(answer.valueCoding, definition):
        codes = ", ".join(str(o.valueCoding.code) for o in definition.answerOption if o.valueCoding)
        return Issue(f"'{answer.valueCoding.code}' is not one of the options: {codes}", link_id, "code-invalid")
    if kind == "valueString" and definition.maxLength and len(answer.valueString) > definition.maxLength:
        return Issue(f"at most {definition.maxLength} characters", link_id, "too-long")
    return None


def _is_option(coding: Any, definition: QuestionnaireItem) -> bool:
    for option in definition.answerOption or []:
        wanted = option.valueCoding
        if wanted is not None and wanted.code == coding.code and (coding.system in (None, wanted.system)):
            return True
    return False


def enabled(definition: QuestionnaireItem, answers: Answers) -> bool:
    """FHIR enableWhen: any (default) or all of the conditions hold."""
    if not definition.enableWhen:
        return True
    results = [_holds(condition, answers) for condition in definition.enableWhen]
    return all(results) if definition.enableBehavior == "all" else any(results)


def _holds(condition: QuestionnaireItemEnableWhen, answers: Answers) -> bool:
    given = answers.values(str(condition.question))
    if condition.operator == "exists":
        return bool(given) == bool(condition.answerBoolean)
    expected = _expected(condition)
    if condition.operator == "=":
        return expected in given
    if condition.operator == "!=":
        return expected not in given
    comparisons = {">": lambda v: v > expected, "<": lambda v: v < expected}
    comparisons |= {">=": lambda v: v >= expected, "<=": lambda v: v <= expected}
    test = comparisons.get(str(condition.operator))
    return test is not None and any(_safely(test, v) for v in given)


def _safely(test: Any, value: Any) -> bool:
    try:
        return bool(test(value))
    except TypeError:
        return False


def _expected(condition: QuestionnaireItemEnableWhen) -> Any:
    for name in type(condition).model_fields:
        if name.startswith("answer") and not name.endswith("__ext"):
            value = getattr(condition, name)
            if value is not None:
                return value.code if name == "answerCoding" else value
    return None
