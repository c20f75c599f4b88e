"""Liveness and readiness for orchestrators: `/healthz` (the process answers) and `/readyz` (the
store commits, the broker answers, the relay runs; with the embedded broker, its supervision: whether
it runs, since when it is down, how often and when it was started again). Neither needs
authentication or touches patient data."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter, Response

from gateway.api.deps import RuntimeDep
from gateway.bus.topics import broker_answers

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Response:
    return Response('{"status":"up"}', media_type="application/json")


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> Response:
    checks = {
        "store": await _store_ready(runtime),
        "broker": await broker_answers(runtime.settings.kafka),
        "relay": runtime.relay.running,
    }
    ready = all(checks.values())
    body: dict[str, object] = {
        "status": "ready" if ready else "not ready",
        "checks": checks,
        "outbox_backlog": await _backlog(runtime),
    }
    if runtime.broker is not None:  # the embedded broker's supervision: an outage, and the restarts
        body["embedded_broker"] = _jsonable(asdict(runtime.broker.health))
    return Response(json.dumps(body), status_code=200 if ready else 503, media_type="application/json")


def _jsonable(fields: dict[str, object]) -> dict[str, object]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}


async def _store_ready(runtime: RuntimeDep) -> bool:
    try:
        async with asyncio.timeout(2):
            await runtime.store.ping()
    except Exception:
        return False
    return True


async def _backlog(runtime: RuntimeDep) -> int | None:
    try:
        return await runtime.store.outbox_backlog()
    except Exception:
        return None
