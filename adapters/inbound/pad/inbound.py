"""The pad's two ways in, each ending in an `InboundReferral`: fields (the web form or the JSON API,
keyed by linkId) and a FHIR QuestionnaireResponse. Both are checked by the same rules.

Must not: route, store or publish (the route hands the result to the intake).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from adapters.inbound.fhir.parse import parse
from adapters.inbound.pad import fields, questionnaire, rules
from adapters.inbound.pad.mapping import Submission, to_referral
from adapters.inbound.pad.reference import new_reference
from adapters.inbound.pad.rules import REFERRER, Variant
from gateway.canonical.referral import InboundReferral
from gateway.settings import PadSettings


def from_fields(
    values: Mapping[str, Any],
    variant: Variant,
    *,
    web_form: bool,
    settings: PadSettings,
    schemas_dir: Path,
    correlation_id: str,
    message_id: str | None,
) -> InboundReferral:
    """Web form or JSON fields to a referral; raises `ConsentMissing` or `InvalidReferral` naming the fields."""
    pad = questionnaire.load(schemas_dir)
    response, unreadable = fields.response_from_fields(
        values,
        pad,
        leave_out=(REFERRER,) if variant == "self" else (),
        unticked_is_no=fields.checkbox_items(pad) if web_form else frozenset(),
    )
    rules.check(response, pad, variant, prior=unreadable)
    submission = Submission(response, variant, new_reference(), correlation_id, message_id)
    return to_referral(submission, pad, settings, schemas_dir)


def from_questionnaire_response(
    body: bytes,
    content_type: str | None,
    *,
    settings: PadSettings,
    schemas_dir: Path,
    correlation_id: str,
    message_id: str | None,
) -> InboundReferral:
    """A FHIR QuestionnaireResponse answering the pad; the referrer section decides who referred."""
    pad = questionnaire.load(schemas_dir)
    response = parse(body, content_type, QuestionnaireResponse)
    assert isinstance(response, QuestionnaireResponse)
    variant = rules.variant_of(response)
    rules.check(response, pad, variant)
    submission = Submission(response, variant, new_reference(), correlation_id, message_id or _sender_id(response))
    return to_referral(submission, pad, settings, schemas_dir)


def _sender_id(response: QuestionnaireResponse) -> str | None:
    """The sender's own identifier for the response makes a resend of it a duplicate."""
    ident = response.identifier
    if ident is not None and ident.value:
        return f"{ident.system or ''}|{ident.value}"
    return None
