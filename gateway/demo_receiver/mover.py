"""The demo receiver's clinician: moves each new referral's Task along at the gateway, as a receiving
service would, through the gateway's FHIR API with a bearer token:

    received → accepted → in-progress (booked onto a course, with its date in executionPeriod.start)

The token comes from the client credentials the gateway's first run on a laptop writes
(DATA_DIR/local-dev-client.json, see gateway/auth/bootstrap.py), exchanged at the token endpoint as
any partner's system would. Without them the receiver still takes referrals; it just moves nothing.
Must not: take part in the gateway's delivery (it is the other side of it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from gateway.canonical.task import task_id_for

log = logging.getLogger(__name__)

JSON_PATCH = "application/json-patch+json"


def steps(booked_on: str) -> list[list[dict[str, Any]]]:
    """The JSON Patches the demo clinician applies, one per step, in order."""
    return [
        [{"op": "replace", "path": "/status", "value": "received"}],
        [
            {"op": "replace", "path": "/status", "value": "accepted"},
            {"op": "add", "path": "/businessStatus", "value": {"text": "Accepted at triage"}},
        ],
        [
            {"op": "replace", "path": "/status", "value": "in-progress"},
            {"op": "add", "path": "/businessStatus", "value": {"text": f"Booked onto the course starting {booked_on}"}},
            {"op": "add", "path": "/executionPeriod", "value": {"start": booked_on}},
        ],
    ]


class TaskMover:
    def __init__(self, gateway_url: str, credentials: Path, pause_s: float = 1.0) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self._credentials = credentials
        self._pause_s = pause_s
        self._http: httpx.AsyncClient | None = None
        self._token: tuple[str, float] | None = None  # (token, expires at, monotonic)
        self._walks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.gateway_url, timeout=10)

    async def stop(self) -> None:
        for walk in list(self._walks):
            walk.cancel()
        await asyncio.gather(*self._walks, return_exceptions=True)
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def referral_arrived(self, referral_id: str) -> None:
        walk = asyncio.create_task(self._walk(referral_id), name=f"demo-task-{referral_id}")
        self._walks.add(walk)
        walk.add_done_callback(self._walks.discard)

    async def _walk(self, referral_id: str) -> None:
        task_id = task_id_for(referral_id)
        booked_on = (datetime.now(UTC) + timedelta(days=14)).date().isoformat()
        try:
            for patch in steps(booked_on):
                await asyncio.sleep(self._pause_s)
                await self._patch(task_id, patch)
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            log.warning("demo receiver: could not move Task/%s: %s", task_id, exc)

    async def _patch(self, task_id: str, patch: list[dict[str, Any]]) -> None:
        assert self._http is not None
        headers = {"Authorization": f"Bearer {await self._bearer()}", "Content-Type": JSON_PATCH}
        response = await self._http.patch(f"/fhir/Task/{task_id}", content=json.dumps(patch), headers=headers)
        if response.status_code != 200:
            raise ValueError(f"the gateway answered {response.status_code}: {response.text[:300]}")
        log.info("demo receiver: Task/%s is now %s", task_id, patch[0]["value"])

    async def _bearer(self) -> str:
        if self._token and self._token[1] > time.monotonic():
            return self._token[0]
        assert self._http is not None
        creds = json.loads(self._credentials.read_text())
        response = await self._http.post(
            creds["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(creds["client_id"], creds["client_secret"]),
        )
        response.raise_for_status()
        body = response.json()
        self._token = (body["access_token"], time.monotonic() + float(body.get("expires_in", 300)) - 30)
        return self._token[0]
