"""The monitor's JSON API under /monitor/api: what the dashboard polls, a referral's trace, dead letters
(list, view, replay, replay a time window, discard) and a page of a topic's messages.

Errors are `GatewayError`s, rendered as OperationOutcomes by the app like every other route.
Must not: show a patient identifier unless `monitoring.access` allows it.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.api.deps import RuntimeDep
from gateway.api.monitor_deps import actor, organisation, viewer
from gateway.errors import NotFound
from gateway.monitoring import access, trace
from gateway.monitoring import mesh as mesh_view
from gateway.monitoring.browser import Browse, browse
from gateway.monitoring.dead_letter_json import dead_letter_json, replay_summary
from gateway.monitoring.dead_letters import STATES
from gateway.monitoring.overview import overview
from gateway.observability.masking import scrub_text

router = APIRouter(prefix="/monitor/api", tags=["monitor"])


class ReplayRequest(BaseModel):
    ids: list[str] = Field(min_length=1)
    receivers: list[str] | None = None  # None: each dead letter's own receiver
    by: str = ""


class WindowRequest(BaseModel):
    receiver: str
    since: datetime
    until: datetime
    by: str = ""


class DiscardRequest(BaseModel):
    reason: str
    by: str = ""


@router.get("/overview")
async def overview_json(runtime: RuntimeDep) -> Response:
    view = await overview(
        runtime.sampler, runtime.store, runtime.router, runtime.topics, runtime.dead_letters, runtime.broker_health
    )
    view = replace(view, mesh=await mesh_view.mailboxes(runtime.mesh))
    return _json(view.as_json())


@router.get("/trace/{q}")
async def trace_json(
    request: Request, runtime: RuntimeDep, q: str, unmasked: bool = False, offset: int = 0
) -> Response:
    page = await trace.find(runtime.store, q, organisation(request), offset)
    found = page.items
    if not found:
        raise NotFound(f"no referral has the id, identifier, NHS number or correlation id '{scrub_text(q)}'")
    shown = access.unmasked(runtime.settings.monitor, unmasked, viewer(request))
    traces = [await trace.trace(runtime.store, f.id, shown) for f in found]
    referrals = [asdict(t) for t in traces if t]
    paging = {"total": page.total, "offset": page.offset, "next_offset": page.next_offset}
    return _json({"query": q if shown else scrub_text(q), **paging, "referrals": referrals})


@router.get("/dead-letters")
async def dead_letters_json(
    runtime: RuntimeDep,
    receiver: str | None = None,
    state: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Response:
    letters = await runtime.dead_letters.search(receiver, state if state in STATES else None, since, until)
    return _json({"dead_letters": [dead_letter_json(d, unmasked=False, with_message=False) for d in letters]})


@router.get("/dead-letters/{dead_letter_id}")
async def dead_letter_json_route(
    request: Request, runtime: RuntimeDep, dead_letter_id: str, unmasked: bool = False
) -> Response:
    letter = await runtime.dead_letters.get(dead_letter_id)
    return _json(dead_letter_json(letter, access.unmasked(runtime.settings.monitor, unmasked, viewer(request))))


@router.post("/dead-letters/replay")
async def replay_json(request: Request, runtime: RuntimeDep, body: ReplayRequest) -> Response:
    done = await runtime.dead_letters.replay(body.ids, actor(request, body.by), body.receivers)
    return _json({"replayed": [asdict(r) for r in done], "summary": replay_summary(done)})


@router.post("/dead-letters/replay-window")
async def replay_window_json(request: Request, runtime: RuntimeDep, body: WindowRequest) -> Response:
    done = await runtime.dead_letters.replay_window(body.receiver, body.since, body.until, actor(request, body.by))
    return _json({"replayed": [asdict(r) for r in done], "summary": replay_summary(done)})


@router.post("/dead-letters/{dead_letter_id}/discard")
async def discard_json(request: Request, runtime: RuntimeDep, dead_letter_id: str, body: DiscardRequest) -> Response:
    letter = await runtime.dead_letters.discard(dead_letter_id, body.reason, actor(request, body.by))
    return _json(dead_letter_json(letter, unmasked=False, with_message=False))


@router.get("/topics/{topic}/messages")
async def messages_json(
    request: Request,
    runtime: RuntimeDep,
    topic: str,
    partition: int | None = None,
    offset: int | None = None,
    since: datetime | None = None,
    limit: int = 25,
    unmasked: bool = False,
) -> Response:
    shown = access.unmasked(runtime.settings.monitor, unmasked, viewer(request))
    ask = Browse(topic, partition, offset, since, max(1, min(limit, runtime.settings.monitor.browse_limit)))
    messages = await browse(runtime.settings.kafka, ask, shown)
    return _json({"topic": topic, "masked": not shown, "messages": [asdict(m) for m in messages]})


def _json(data: Any) -> Response:
    return JSONResponse(jsonable_encoder(data))
