"""The HTTP surfaces' one seam: an ASGI middleware that logs every message posted to an inbound route
(FHIR REST, `$process-message`, the pad's form and JSON, QuestionnaireResponse, Task updates) with
its outcome, before the response starts.

The body is kept as it was read off the socket. The sender is the organisation of the caller the
route guard admitted; the refusal is the `GatewayError` the app rendered (app.py notes it on the
arrival), or, for a response of 400 or more that no error explains, the status itself.
Must not: change a request or a response, or hold a response back after its start has been logged.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import SenderError
from gateway.inbound_log.arrival import Arrival
from gateway.inbound_log.log import InboundLog

#: (method, path pattern) -> the inbound adapter whose messages these are.
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"/fhir/ServiceRequest/?"), "fhir-rest"),
    ("PUT", re.compile(r"/fhir/ServiceRequest/[^/]+"), "fhir-rest"),
    ("POST", re.compile(r"/fhir/\$process-message"), "fhir-messaging"),
    ("PUT", re.compile(r"/fhir/Task/[^/]+"), "fhir-rest"),
    ("PATCH", re.compile(r"/fhir/Task/[^/]+"), "fhir-rest"),
    ("POST", re.compile(r"/pad(/self-referral)?"), "pad"),
    ("POST", re.compile(r"/fhir/QuestionnaireResponse"), "pad"),
)


def channel_of(method: str, path: str) -> str | None:
    return next((channel for m, pattern, channel in ROUTES if m == method and pattern.fullmatch(path)), None)


class InboundHttpLog:
    def __init__(self, app: ASGIApp, log: InboundLog) -> None:
        self.app = app
        self._log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = channel_of(scope.get("method", ""), scope.get("path", "")) if scope["type"] == "http" else None
        if channel is None or not self._log.enabled:
            await self.app(scope, receive, send)
            return
        arrival = _arrival(scope, channel)
        async with self._log.receiving(arrival):
            await self.app(scope, _reading(receive, arrival), self._answering(scope, send, arrival))

    def _answering(self, scope: Scope, send: Send, arrival: Arrival) -> Send:
        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                _identify(scope, arrival)
                status = int(message["status"])
                if status >= 400 and arrival.error is None:
                    error = SenderError(f"answered HTTP {status}")
                    error.http_status = status
                    arrival.refuse(error)
                await self._log.settle(arrival)
            await send(message)

        return answer


def _arrival(scope: Scope, channel: str) -> Arrival:
    headers = Headers(scope=scope)
    client = scope.get("client")
    return Arrival(
        channel,
        b"",
        source_address=str(client[0]) if client else None,
        destination=f"{scope['method']} {scope['path']}",
        control_id=headers.get("x-request-id"),
        correlation_id=headers.get("x-correlation-id") or headers.get("x-request-id"),
        content_type=headers.get("content-type"),
    )


def _reading(receive: Receive, arrival: Arrival) -> Receive:
    """`receive`, keeping a copy of the body as it comes."""
    chunks: list[bytes] = []

    async def read() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            arrival.raw = b"".join(chunks)
        return message

    return read


def _identify(scope: Scope, arrival: Arrival) -> None:
    """Who sent it: the organisation of the caller the route guard admitted."""
    principal: Any = scope.get("state", {}).get("principal")
    arrival.sender = principal.ods if principal is not None else "unauthenticated"
