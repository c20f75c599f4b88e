"""What the pad's web page shows: sections and fields built from the Questionnaire, with what was
typed and the error for each field, in the words of the physiotherapist's or the patient's variant.

Pure: no I/O, no FastAPI. Must not: check answers (adapters/inbound/pad does) or send anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.questionnaire import QuestionnaireItem

from adapters.inbound.pad.questionnaire import ENTRY_FORMAT, ITEM_CONTROL, Pad, extension_text
from adapters.inbound.pad.rules import REFERRER, Variant, in_form_order
from gateway.errors import Issue

#: The patient's own words for a self-referral, where they differ from the Questionnaire's.
SELF_REFERRAL_TEXT = {
    "patient": "Your details",
    "patient.nhs-number-unknown": "I don't know my NHS number",
    "patient.safe-to-leave-message": "Is it safe for us to leave you a voicemail or text message?",
    "patient.interpreter-needed": "I need an interpreter",
    "difficulties": "What you are struggling with",
    "difficulties.presenting": "What are you struggling with at the moment?",
    "difficulties.other-detail": "What else are you struggling with?",
    "conditions.long-term": "Do you live with any of these long-term conditions?",
    "pathway": "The help you would like",
    "pathway.recommended": "Which would you like?",
    "risk": "Your safety",
    "risk.self-harm-thoughts": "Are you having thoughts of harming yourself or ending your life at the moment?",
    "consent": "Your consent",
    "consent.referral": "I would like to be referred to NHS Talking Therapies",
    "consent.sharing": "I agree to my information being shared with NHS Talking Therapies",
    "notes": "Anything else you would like us to know",
}
#: Hints the Questionnaire does not carry (its entryFormat hints are used too).
HINTS = {
    "risk.self-harm-thoughts": "If yes, the referral is sent as urgent and you are shown what to do now.",
    "consent": "Without both, nothing is sent.",
    "conditions.long-term": "Tick all that apply.",
    "difficulties.presenting": "Tick all that apply.",
    "patient.contact-times": "Tick all that apply.",
}
SELF_REFERRAL_HINTS = {
    "patient.nhs-number": "10 digits. It is on letters from the NHS, on prescriptions and in the NHS App. "
    "If you do not know it, tick the box below: the service finds it from your name, date of birth and address.",
    "risk.self-harm-thoughts": "If yes, we send your referral as urgent and show you where to get help now.",
    "consent": "We can only send your referral if you agree to both.",
}
#: Shown as required: needed unless the box beside it says it is not known (rules.py checks which).
REQUIRED_UNLESS_UNKNOWN = frozenset({"patient.nhs-number"})
#: HTML input attributes by linkId: input type, inputmode, size class; autocomplete is per variant.
INPUTS: dict[str, dict[str, str]] = {
    "patient.nhs-number": {"inputmode": "numeric", "width": "width-10", "spellcheck": "false"},
    "patient.given-name": {"width": "width-20", "spellcheck": "false"},
    "patient.family-name": {"width": "width-20", "spellcheck": "false"},
    "referrer.name": {"width": "width-20", "spellcheck": "false"},
    "patient.birth-date": {"inputmode": "numeric", "width": "width-10"},
    "patient.postcode": {"width": "width-10", "autocapitalize": "characters", "spellcheck": "false"},
    "patient.phone": {"type": "tel", "width": "width-20"},
    "referrer.hcpc": {"width": "width-10", "autocapitalize": "characters", "spellcheck": "false"},
    "referrer.organisation-ods": {"width": "width-10", "autocapitalize": "characters", "spellcheck": "false"},
    "referrer.phone": {"type": "tel", "width": "width-20"},
    "referrer.email": {"type": "email", "spellcheck": "false"},
}
#: Browser autofill: the patient's own details on a self-referral; on the physiotherapist's pad only
#: the physiotherapist's (autofilling the patient's fields with the clinician's details would be wrong).
AUTOCOMPLETE = {
    "self": {
        "patient.given-name": "given-name",
        "patient.family-name": "family-name",
        "patient.birth-date": "bday",
        "patient.address": "street-address",
        "patient.postcode": "postal-code",
        "patient.phone": "tel",
    },
    "physiotherapist": {"referrer.name": "name", "referrer.phone": "tel", "referrer.email": "email"},
}


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    html_id: str
    checked: bool


@dataclass(frozen=True)
class Field:
    name: str  # the linkId: what the form posts
    html_id: str  # what labels and the error summary point at (the first option of a group)
    label: str
    control: str  # text, textarea, checkbox, radios, checkboxes, yes-no
    required: bool
    hint: str | None = None
    error: str | None = None
    value: str = ""
    options: tuple[Option, ...] = ()
    attrs: Mapping[str, str] = field(default_factory=dict)
    conditional: bool = False  # asked only after another answer: shown indented under it


@dataclass(frozen=True)
class Section:
    name: str
    legend: str | None  # None: a lone question, shown without a fieldset
    hint: str | None
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class ErrorLink:
    href: str
    text: str


def html_id(link_id: str) -> str:
    """linkIds have dots; ids without them work in CSS selectors and fragment links unescaped."""
    return link_id.replace(".", "-")


def sections(pad: Pad, variant: Variant, typed: Mapping[str, Any], issues: Sequence[Issue]) -> list[Section]:
    errors = field_errors(pad, issues)
    out = []
    for item in pad.questionnaire.item or []:
        if variant == "self" and item.linkId == REFERRER:
            continue
        if item.type == "group":
            fields = tuple(_field(pad, child, variant, typed, errors) for child in item.item or [])
            out.append(Section(str(item.linkId), _text(item, variant), _hint(item, variant), fields))
        else:
            out.append(Section(str(item.linkId), None, None, (_field(pad, item, variant, typed, errors),)))
    return out


def field_errors(pad: Pad, issues: Sequence[Issue]) -> dict[str, str]:
    """The first problem with each field, as a sentence, in the order of the form."""
    errors: dict[str, str] = {}
    for issue in in_form_order(list(issues), pad):
        if issue.expression and issue.expression not in errors:
            errors[issue.expression] = sentence(_say(issue, pad.items.get(issue.expression)))
    return errors


def error_summary(pad: Pad, variant: Variant, issues: Sequence[Issue]) -> list[ErrorLink]:
    """One link per field with a problem, to the field; problems not about a field link to the form."""
    links = []
    for expression, message in field_errors(pad, issues).items():
        item = pad.items.get(expression)
        if item is None:
            links.append(ErrorLink("#pad-form", message))
            continue
        target = _first_input_id(item) if item.type in {"choice", "boolean"} else html_id(expression)
        label = _text(item, variant).rstrip("?")
        links.append(ErrorLink(f"#{target}", f"{label}: {message[0].lower()}{message[1:]}"))
    links += [ErrorLink("#pad-form", sentence(i.diagnostics)) for i in issues if not i.expression]
    return links


def _say(issue: Issue, item: QuestionnaireItem | None) -> str:
    """A missing answer, said the way the control is answered."""
    if issue.code != "required" or item is None:
        return issue.diagnostics
    return {"yes-no": "answer yes or no", "radios": "choose one", "checkboxes": "tick at least one"}.get(
        _control(item), "this is required"
    )


def sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _field(
    pad: Pad, item: QuestionnaireItem, variant: Variant, typed: Mapping[str, Any], errors: Mapping[str, str]
) -> Field:
    link_id = str(item.linkId)
    control = _control(item)
    value = typed.get(link_id)
    chosen = {str(v) for v in value} if isinstance(value, list) else {str(value)} if value is not None else set()
    attrs = dict(INPUTS.get(link_id, {}))
    attrs["autocomplete"] = AUTOCOMPLETE[variant].get(link_id, "off")
    return Field(
        name=link_id,
        html_id=_first_input_id(item) if control in {"radios", "checkboxes", "yes-no"} else html_id(link_id),
        label=_text(item, variant),
        control=control,
        required=bool(item.required) or link_id in REQUIRED_UNLESS_UNKNOWN,
        hint=_conditional_hint(pad, item, variant) or _hint(item, variant),
        error=errors.get(link_id),
        value="" if isinstance(value, list) or value is None else str(value),
        options=_options(item, control, chosen),
        attrs=attrs,
        conditional=bool(item.enableWhen),
    )


def _control(item: QuestionnaireItem) -> str:
    shown_as = extension_text(item, ITEM_CONTROL)
    if item.type == "boolean":
        return "checkbox" if shown_as == "check-box" else "yes-no"
    if item.type == "choice":
        return "checkboxes" if item.repeats else "radios"
    return "textarea" if item.type == "text" else "text"


def _options(item: QuestionnaireItem, control: str, chosen: set[str]) -> tuple[Option, ...]:
    base = html_id(str(item.linkId))
    if control == "yes-no":
        pairs = [("yes", "Yes"), ("no", "No")]
        ticked = {
            "yes" if c.lower() in {"yes", "true", "on"} else "no" if c.lower() in {"no", "false"} else c for c in chosen
        }
        return tuple(Option(v, label, f"{base}-{v}", v in ticked) for v, label in pairs)
    if control == "checkbox":
        return (Option("yes", "", base, bool(chosen & {"yes", "true", "on"})),)
    return tuple(
        Option(
            str(o.valueCoding.code),
            str(o.valueCoding.display),
            f"{base}-{o.valueCoding.code}",
            o.valueCoding.code in chosen,
        )
        for o in item.answerOption or []
        if o.valueCoding is not None
    )


def _first_input_id(item: QuestionnaireItem) -> str:
    base = html_id(str(item.linkId))
    if item.type == "boolean":
        return base if extension_text(item, ITEM_CONTROL) == "check-box" else f"{base}-yes"
    first = next((o.valueCoding.code for o in item.answerOption or [] if o.valueCoding is not None), None)
    return f"{base}-{first}" if first else base


def _text(item: QuestionnaireItem, variant: Variant) -> str:
    if variant == "self" and item.linkId in SELF_REFERRAL_TEXT:
        return SELF_REFERRAL_TEXT[str(item.linkId)]
    return str(item.text or item.linkId)


def _conditional_hint(pad: Pad, item: QuestionnaireItem, variant: Variant) -> str | None:
    """'Only if you ticked ...', from the item's enableWhen: the page has no script to reveal it."""
    for condition in item.enableWhen or []:
        question = str(condition.question)
        if condition.answerCoding is not None:
            return f"Only if you ticked \u201c{pad.option_display(question, str(condition.answerCoding.code))}\u201d."
        if condition.answerBoolean is True and question in pad.items:
            return f"Only if you ticked \u201c{_text(pad.items[question], variant)}\u201d."
    return None


def _hint(item: QuestionnaireItem, variant: Variant) -> str | None:
    link_id = str(item.linkId)
    if variant == "self" and link_id in SELF_REFERRAL_HINTS:
        return SELF_REFERRAL_HINTS[link_id]
    return HINTS.get(link_id) or extension_text(item, ENTRY_FORMAT)
