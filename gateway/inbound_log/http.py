"""The HTTP surfaces' one seam: an ASGI middleware that logs every message posted to an inbound route
(FHIR REST, `$process-message`, the pad's form and JSON, QuestionnaireResponse, Task updates) with
its outcome, before the response starts.

The body is kept as it was read off the socket; one refused before the route read it (a missing
token, say) is read to its end first, up to `max_body_bytes`, so that it is kept too. The sender is
the organisation of the caller the route guard admitted; the refusal is the `GatewayError` the app
rendered (app.py notes it on the arrival), or, for a response of 400 or more that no error explains,
the status itself.
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
    ("PUT", re.compile(r"/fhir/Task/[^/]+"), "fhir-task"),
    ("PATCH", re.compile(r"/fhir/Task/[^/]+"), "fhir-task"),
    ("POST", re.compile(r"/pad(/self-referral)?"), "pad"),
    ("POST", re.compile(r"/fhir/QuestionnaireResponse"), "pad"),
)


def channel_of(method: str, path: str) -> str | None:
    return next((channel for m, pattern, channel in ROUTES if m == method and pattern.fullmatch(path)), None)


class InboundHttpLog:
    def __init__(self, app: ASGIApp, log: InboundLog, max_body_bytes: int = 5 * 1024 * 1024) -> None:
        self.app = app
        self._log = log
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = channel_of(scope.get("method", ""), scope.get("path", "")) if scope["type"] == "http" else None
        if channel is None:  # with the log off, the outcome is still counted
            await self.app(scope, receive, send)
            return
        arrival = _arrival(scope, channel)
        body = _Body(receive, arrival)
        async with self._log.receiving(arrival):
            await self.app(scope, body.receive, self._answering(scope, send, arrival, body))

    def _answering(self, scope: Scope, send: Send, arrival: Arrival, body: _Body) -> Send:
        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                await body.read_rest(self._declared(scope))
                _identify(scope, arrival)
                status = int(message["status"])
                if status >= 400 and arrival.error is None:
                    error = SenderError(f"answered HTTP {status}")
                    error.http_status = status
                    arrival.refuse(error)
                await self._log.settle(arrival)
            await send(message)

        return answer

    def _declared(self, scope: Scope) -> int | None:
        return _declared_length(scope, self._max_body_bytes)


def _declared_length(scope: Scope, limit: int) -> int | None:
    declared = Headers(scope=scope).get("content-length", "")
    return int(declared) if declared.isdigit() and int(declared) <= limit else None


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


class _Body:
    """The request's `receive`, keeping a copy of the body as it comes."""

    def __init__(self, receive: Receive, arrival: Arrival) -> None:
        self._receive = receive
        self._arrival = arrival
        self._chunks: list[bytes] = []
        self._complete = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._chunks.append(message.get("body", b""))
            self._arrival.raw = b"".join(self._chunks)
            self._complete = not message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            self._complete = True
        return message

    async def read_rest(self, declared: int | None) -> None:
        """Read what the route left unread, when the request declared a length within the limit."""
        while not self._complete and declared is not None:
            await self.receive()


def _identify(scope: Scope, arrival: Arrival) -> None:
    """Who sent it: the organisation of the caller the route guard admitted."""
    principal: Any = scope.get("state", {}).get("principal")
    arrival.sender = principal.ods if principal is not None else "unauthenticated"
