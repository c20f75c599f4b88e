"""The monitor's web pages under /monitor: the dashboard (topics, offsets, lag, backlog, adapters,
receivers' health, charts), a referral's trace, dead letters (view, replay, discard) and the message
browser. Rendered on the server (Jinja2); a small script refreshes the dashboard by polling
/monitor/api/overview. The JSON API the pages and scripts use is gateway/api/monitor_json.py.

Forms post and redirect (303) back with what was done, or with the error, in the query string.
Must not: show a patient identifier unless `monitoring.access` allows it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from gateway.api.deps import RuntimeDep
from gateway.api.monitor_deps import actor, organisation, principal, viewer
from gateway.errors import GatewayError, Issue, MalformedInput
from gateway.monitoring import access, charts, trace
from gateway.monitoring import mesh as mesh_view
from gateway.monitoring.browser import Browse, browse
from gateway.monitoring.dead_letter_json import dead_letter_json, replay_summary
from gateway.monitoring.dead_letters import STATES
from gateway.monitoring.overview import ALL_TOPICS, overview

router = APIRouter(prefix="/monitor", tags=["monitor"])
templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
# not `spark`: the chart macro of that name would hide it inside itself
templates.env.globals.update(
    points=charts.points, peak=charts.peak, spark_size=(charts.SPARK_WIDTH, charts.SPARK_HEIGHT)
)
STATIC = Path(__file__).resolve().parent / "static"
_STATIC_FILES = {"monitor.css": "text/css", "monitor.js": "text/javascript"}
FormText = Annotated[str, Form()]


@router.get("", response_class=HTMLResponse)
async def dashboard(request: Request, runtime: RuntimeDep) -> Response:
    view = await overview(
        runtime.sampler, runtime.store, runtime.router, runtime.topics, runtime.dead_letters, runtime.broker_health
    )
    view = replace(view, mesh=await mesh_view.mailboxes(runtime.mesh))
    context = {
        "title": "Dashboard",
        "o": view,
        "cells": view.cells(),
        "structure": view.structure(),
        "every_ms": int(runtime.sampler.interval_s * 1000),
        "all_topics": ALL_TOPICS,
    }
    return templates.TemplateResponse(request, "monitor/dashboard.html", context)


@router.get("/trace", response_class=HTMLResponse)
async def trace_page(
    request: Request, runtime: RuntimeDep, q: str = "", unmasked: bool = False, offset: int = 0
) -> Response:
    shown = access.unmasked(runtime.settings.monitor, unmasked, viewer(request))
    page = await trace.find(runtime.store, q, organisation(request), offset) if q.strip() else None
    found = page.items if page else []
    one = await trace.trace(runtime.store, found[0].id, shown) if page and page.total == 1 else None
    context = {"title": "Trace", "q": q, "found": found, "page": page, "trace": one}
    return templates.TemplateResponse(request, "monitor/trace.html", context)


@router.get("/dead-letters", response_class=HTMLResponse)
async def dead_letters_page(
    request: Request,
    runtime: RuntimeDep,
    receiver: str = "",
    state: str = "open",
    since: str = "",
    until: str = "",
    done: str = "",
    error: str = "",
) -> Response:
    letters = await runtime.dead_letters.search(
        receiver or None, state if state in STATES else None, parse_time(since), parse_time(until)
    )
    context = {
        "title": "Dead letters",
        "letters": letters,
        "filters": {"receiver": receiver, "state": state, "since": since, "until": until},
        "states": STATES,
        "receivers": sorted(s.id for s in runtime.router.directory.services()),
        "signed_in": principal(request) is not None,
        "done": done,
        "error": error,
    }
    return templates.TemplateResponse(request, "monitor/dead_letters.html", context)


@router.get("/dead-letters/{dead_letter_id}", response_class=HTMLResponse)
async def dead_letter_page(
    request: Request, runtime: RuntimeDep, dead_letter_id: str, unmasked: bool = False, done: str = "", error: str = ""
) -> Response:
    letter = await runtime.dead_letters.get(dead_letter_id)
    shown = access.unmasked(runtime.settings.monitor, unmasked, viewer(request))
    same_event = [d for d in await runtime.dead_letters.search() if d.event_id == letter.event_id]
    context = {
        "title": "Dead letter",
        "d": letter,
        "view": dead_letter_json(letter, shown),
        "same_event": same_event,
        "masked": not shown,
        "may_unmask": access.may_unmask(runtime.settings.monitor, viewer(request)),
        "signed_in": principal(request) is not None,
        "done": done,
        "error": error,
    }
    return templates.TemplateResponse(request, "monitor/dead_letter.html", context)


@router.post("/dead-letters/replay")
async def replay_selected(request: Request, runtime: RuntimeDep) -> Response:
    form = await request.form()
    ids = [str(i) for i in form.getlist("id")]
    back = str(form.get("back") or "/monitor/dead-letters")
    try:
        if not ids:
            raise MalformedInput("choose at least one dead letter", Issue("no dead letter chosen", "id", "required"))
        done = await runtime.dead_letters.replay(ids, actor(request, form.get("by")))
    except GatewayError as exc:
        return _back(back, error=exc.message)
    return _back(back, done=replay_summary(done))


@router.post("/dead-letters/replay-window")
async def replay_window(
    request: Request, runtime: RuntimeDep, receiver: FormText, since: FormText, until: FormText, by: FormText = ""
) -> Response:
    try:
        start, end = _window(since, until)
        done = await runtime.dead_letters.replay_window(receiver, start, end, actor(request, by))
    except GatewayError as exc:
        return _back("/monitor/dead-letters", error=exc.message)
    return _back("/monitor/dead-letters", done=replay_summary(done))


@router.post("/dead-letters/{dead_letter_id}/discard")
async def discard(
    request: Request, runtime: RuntimeDep, dead_letter_id: str, reason: FormText = "", by: FormText = ""
) -> Response:
    back = f"/monitor/dead-letters/{dead_letter_id}"
    try:
        await runtime.dead_letters.discard(dead_letter_id, reason, actor(request, by))
    except GatewayError as exc:
        return _back(back, error=exc.message)
    return _back(back, done="Discarded; the reason is recorded in the referral's trace.")


@router.get("/topics/{topic}", response_class=HTMLResponse)
async def messages_page(
    request: Request,
    runtime: RuntimeDep,
    topic: str,
    partition: Annotated[str, Query()] = "",
    offset: Annotated[str, Query()] = "",
    since: Annotated[str, Query()] = "",
    limit: int = 25,
    unmasked: bool = False,
) -> Response:
    shown = access.unmasked(runtime.settings.monitor, unmasked, viewer(request))
    ask = Browse(
        topic, _int(partition), _int(offset), parse_time(since), min(limit, runtime.settings.monitor.browse_limit)
    )
    messages = await browse(runtime.settings.kafka, ask, shown)
    snapshot = runtime.sampler.snapshot
    offsets = snapshot.topic(topic) if snapshot else None
    context = {
        "title": topic,
        "topic": topic,
        "ask": ask,
        "form": {"partition": partition, "offset": offset, "since": since, "limit": ask.limit},
        "messages": messages,
        "partitions": [p.partition for p in offsets.partitions] if offsets else [],
        "masked": not shown,
        "may_unmask": access.may_unmask(runtime.settings.monitor, viewer(request)),
    }
    return templates.TemplateResponse(request, "monitor/messages.html", context)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in _STATIC_FILES:
        return Response(status_code=404)
    return FileResponse(STATIC / name, media_type=_STATIC_FILES[name])


def parse_time(text: str) -> datetime | None:
    """A time from a form (`datetime-local` gives no zone: it is read as UTC)."""
    if not text.strip():
        return None
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise MalformedInput(f"'{text}' is not a time", Issue(str(exc), "since", "value")) from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _window(since: str, until: str) -> tuple[datetime, datetime]:
    start, end = parse_time(since), parse_time(until)
    if start is None or end is None:
        raise MalformedInput("give the window's start and end", Issue("since and until are required", "since"))
    return start, end


def _int(text: str) -> int | None:
    return int(text) if text.strip().lstrip("-").isdigit() else None


def _back(path: str, **message: str) -> Response:
    if not path.startswith("/monitor/"):  # only ever back to a page of the monitor
        path = "/monitor/dead-letters"
    separator = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{separator}{urlencode(message)}", status_code=303)
