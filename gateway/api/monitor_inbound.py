"""The monitor's Inbound page (/monitor/inbound) and its JSON (/monitor/api/inbound): every message
that arrived, found by time, channel, sender, outcome, reason, control or request id, referral or
NHS number; one message shown with each issue marked where it is; a refused message edited and
resubmitted, or every refused message of a sender or a reason in a window resubmitted as it came.

Reading needs `monitor.read`; resubmitting needs `monitor.resubmit`, and editing also needs to see the
message unmasked (`monitoring.access`). A caller limited to one organisation sees what it sent.
Must not: show a patient identifier unless `monitoring.access` allows it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from gateway.api.deps import RuntimeDep
from gateway.api.monitor import parse_time, templates
from gateway.api.monitor_deps import actor, organisation, principal, viewer
from gateway.audit.events import Entity
from gateway.errors import Forbidden, GatewayError, Issue, MalformedInput, NotFound
from gateway.inbound_log.arrival import OUTCOMES, REASONS
from gateway.inbound_log.resubmit import Resubmission
from gateway.monitoring import access, inbound
from gateway.observability.masking import scrub_text
from gateway.runtime import Runtime
from gateway.store.inbound import InboundQuery, LoggedMessage, Page

router = APIRouter(prefix="/monitor", tags=["monitor"])
FormText = Annotated[str, Form()]
PAGE_SIZE = 50
#: The search's fields, as the form and the JSON name them.
FIELDS = ("since", "until", "channel", "sender", "outcome", "reason", "control_id", "referral_id", "nhs")
CHANNELS = ("hl7v2-mllp", "fhir-rest", "fhir-messaging", "pad", "fhir-task", "status-topic")


@router.get("/inbound", response_class=HTMLResponse)
async def inbound_page(
    request: Request, runtime: RuntimeDep, offset: int = 0, done: str = "", error: str = ""
) -> Response:
    form = {name: request.query_params.get(name, "") for name in FIELDS}
    shown = access.unmasked(runtime.settings.monitor, request.query_params.get("unmasked") == "true", viewer(request))
    page = await _search(request, runtime, form, offset)
    context = {
        "title": "Inbound",
        "form": form,
        "page": page,
        "rows": [_row(m, shown) for m in page.items],
        "channels": CHANNELS,
        "outcomes": OUTCOMES,
        "reasons": REASONS,
        "signed_in": principal(request) is not None,
        "done": done,
        "error": error,
    }
    return templates.TemplateResponse(request, "monitor/inbound.html", context)


@router.get("/inbound/{message_id}", response_class=HTMLResponse)
async def inbound_message_page(
    request: Request, runtime: RuntimeDep, message_id: str, unmasked: bool = False, done: str = "", error: str = ""
) -> Response:
    message = await _message(request, runtime, message_id)
    may_unmask = access.may_unmask(runtime.settings.monitor, viewer(request))
    shown = access.unmasked(runtime.settings.monitor, unmasked, viewer(request))
    attempts = await runtime.store.inbound.search(InboundQuery(equals={"resubmit_of": message.id}), 0, 100)
    if shown:
        await runtime.audit.note("read", Entity(f"InboundMessage/{message.id}"), description="shown unmasked")
    context = {
        "title": "Inbound message",
        "m": _row(message, shown),
        "shown": inbound.show(message, shown),
        "raw": inbound.text_of(message.raw) if shown else None,
        "edit_diff": inbound.shown_diff(message.edit_diff, shown),
        "attempts": [_row(a, shown) for a in attempts.items],
        "masked": not shown,
        "may_unmask": may_unmask,
        "signed_in": principal(request) is not None,
        "done": done,
        "error": error,
    }
    return templates.TemplateResponse(request, "monitor/inbound_message.html", context)


@router.post("/inbound/{message_id}/resubmit")
async def resubmit_one(
    request: Request, runtime: RuntimeDep, message_id: str, message: FormText = "", by: FormText = ""
) -> Response:
    back = f"/monitor/inbound/{message_id}"
    try:
        done = await _resubmit(request, runtime, message_id, message, actor(request, by))
    except GatewayError as exc:
        return _back(back, error=exc.message)
    return _back(f"/monitor/inbound/{done.attempt or message_id}", done=summary([done]))


@router.post("/inbound/resubmit")
async def resubmit_bulk(
    request: Request,
    runtime: RuntimeDep,
    since: FormText,
    until: FormText,
    sender: FormText = "",
    reason: FormText = "",
    by: FormText = "",
) -> Response:
    try:
        done = await _bulk(request, runtime, since, until, sender, reason, actor(request, by))
    except GatewayError as exc:
        return _back("/monitor/inbound", error=exc.message)
    return _back("/monitor/inbound", done=summary(done))


@router.get("/api/inbound")
async def inbound_json(request: Request, runtime: RuntimeDep, offset: int = 0, limit: int = PAGE_SIZE) -> Response:
    form = {name: request.query_params.get(name, "") for name in FIELDS}
    page = await _search(request, runtime, form, offset, min(max(limit, 1), 500))
    body = {"total": page.total, "offset": page.offset, "next_offset": page.next_offset}
    return JSONResponse({**body, "messages": [_row(m, False) for m in page.items]})


@router.get("/api/inbound/{message_id}")
async def inbound_message_json(
    request: Request, runtime: RuntimeDep, message_id: str, unmasked: bool = False
) -> Response:
    message = await _message(request, runtime, message_id)
    shown = access.unmasked(runtime.settings.monitor, unmasked, viewer(request))
    view = inbound.show(message, shown)
    lines = [{"text": line.text, "issues": list(line.issues)} for line in view.lines]
    return JSONResponse(
        {**_row(message, shown), "lines": lines, "unplaced": list(view.unplaced), "masked": view.masked}
    )


@router.post("/api/inbound/{message_id}/resubmit")
async def resubmit_one_json(request: Request, runtime: RuntimeDep, message_id: str) -> Response:
    body = await _json_body(request)
    done = await _resubmit(request, runtime, message_id, str(body.get("message") or ""), actor(request, body.get("by")))
    return JSONResponse(resubmission_json(done))


@router.post("/api/inbound/resubmit")
async def resubmit_bulk_json(request: Request, runtime: RuntimeDep) -> Response:
    body = await _json_body(request)
    since, until, sender, reason = (str(body.get(k) or "") for k in ("since", "until", "sender", "reason"))
    done = await _bulk(request, runtime, since, until, sender, reason, actor(request, body.get("by")))
    return JSONResponse({"summary": summary(done), "resubmissions": [resubmission_json(d) for d in done]})


def summary(done: list[Resubmission]) -> str:
    """One sentence: how many were sent again, and what became of them."""
    if not done:
        return "No refused message matched; nothing was resubmitted."
    counts: dict[str, int] = {}
    for d in done:
        counts[d.outcome] = counts.get(d.outcome, 0) + 1
    parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    return f"Resubmitted {len(done)}: {parts}."


def resubmission_json(done: Resubmission) -> dict[str, Any]:
    data = asdict(done)
    data["issues"] = [{"diagnostics": i.diagnostics, "expression": i.expression} for i in done.issues]
    return data


async def _search(
    request: Request, runtime: Runtime, form: dict[str, str], offset: int, limit: int = PAGE_SIZE
) -> Page[LoggedMessage]:
    limited = organisation(request)
    query = inbound.query(
        since=parse_time(form["since"]),
        until=parse_time(form["until"]),
        sender=limited or form["sender"],
        nhs=form["nhs"],
        channel=form["channel"],
        outcome=form["outcome"],
        reason=form["reason"],
        control_id=form["control_id"],
        referral_id=form["referral_id"],
    )
    return await runtime.store.inbound.search(query, max(offset, 0), limit)


async def _message(request: Request, runtime: Runtime, message_id: str) -> LoggedMessage:
    message = await runtime.store.inbound.get(message_id)
    limited = organisation(request)
    if message is None or (limited is not None and not message.sender.split("^")[-1] == limited):
        raise NotFound(f"no inbound message {message_id} is logged here")
    return message


async def _resubmit(request: Request, runtime: Runtime, message_id: str, edited: str, by: str) -> Resubmission:
    original = await _message(request, runtime, message_id)
    if not edited.strip():
        return await runtime.resubmitter.resubmit(original.id, by)
    if not access.may_unmask(runtime.settings.monitor, viewer(request)):
        raise Forbidden("editing a message needs to see it unmasked (the patient-data-viewer role)")
    text = edited.replace("\r\n", "\n")
    if original.channel == "hl7v2-mllp":  # a text box ends lines with CR LF; HL7 ends segments with CR
        text = text.replace("\n", "\r").rstrip("\r") + "\r"
    return await runtime.resubmitter.resubmit(original.id, by, text.encode("utf-8"))


async def _bulk(
    request: Request, runtime: Runtime, since: str, until: str, sender: str, reason: str, by: str
) -> list[Resubmission]:
    start, end = parse_time(since), parse_time(until)
    if start is None or end is None:
        raise MalformedInput("give the window's start and end", Issue("since and until are required", "since"))
    if not (sender.strip() or reason.strip()):
        raise MalformedInput("choose a sender or a reason", Issue("sender or reason is required", "sender"))
    query = inbound.query(since=start, until=end, sender=organisation(request) or sender, reason=reason)
    return await runtime.resubmitter.bulk(query, by)


def _row(m: LoggedMessage, unmasked: bool) -> dict[str, Any]:
    """A message as a line of a list (and the facts of its page)."""
    return {
        "id": m.id,
        "received_at": m.received_at.isoformat(),
        "received": m.received_at.strftime("%d %b %Y %H:%M:%S"),
        "channel": m.channel,
        "sender": m.sender,
        "source_address": m.source_address,
        "destination": m.destination,
        "control_id": m.control_id,
        "correlation_id": m.correlation_id,
        "content_type": m.content_type,
        "size": len(m.raw),
        "outcome": m.outcome,
        "reason": m.reason,
        "referral_id": m.referral_id,
        "nhs_number": inbound.masked_nhs_number(m, unmasked),
        "issues": [_issue(i, unmasked) for i in m.issues],
        "resubmit_of": m.resubmit_of,
        "resubmitted_by": m.resubmitted_by,
    }


def _issue(issue: dict[str, Any], unmasked: bool) -> dict[str, Any]:
    text = str(issue.get("diagnostics") or "")
    return {**issue, "diagnostics": text if unmasked else scrub_text(text)}


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise MalformedInput("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedInput("the body must be a JSON object", Issue("not an object", "$"))
    return body


def _back(path: str, **message: str) -> Response:
    if not path.startswith("/monitor/"):
        path = "/monitor/inbound"
    return RedirectResponse(f"{path}?{urlencode(message)}", status_code=303)
