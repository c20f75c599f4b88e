"""`create_app(settings)`: the FastAPI application and its lifespan (which owns the Runtime).

Every error leaves as a FHIR OperationOutcome with the right status, never a stack trace. X-Request-Id
and X-Correlation-Id are echoed on every response (BaRS transactional integrity).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import __version__
from gateway.api import (
    audit_events,
    fhir,
    metrics,
    monitor,
    monitor_inbound,
    monitor_json,
    oauth,
    operations,
    pad,
    signin,
    tasks,
)
from gateway.api.outcome import operation_outcome
from gateway.api.representation import fhir_response
from gateway.auth import policy, web
from gateway.auth.guard import guard, route_path
from gateway.errors import GatewayError, Issue, MalformedInput, NotFound, SenderError, Unauthenticated
from gateway.inbound_log.arrival import refused_here
from gateway.inbound_log.http import InboundHttpLog
from gateway.observability.log_context import bind_correlation, correlation
from gateway.runtime import Runtime
from gateway.settings import Settings

log = logging.getLogger(__name__)
ERROR_PAGES = Jinja2Templates(directory=Path(__file__).resolve().parent / "api" / "templates")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    # Every route runs the guard first (gateway/auth/policy.py says who may call it); the OpenAPI
    # document is a guarded route of its own, and no documentation UI is served.
    app = FastAPI(
        title="Referral Gateway",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(guard)],
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    _install_error_handlers(app)
    app.add_middleware(_TransactionHeaders)
    # outermost: it sees every answer
    app.add_middleware(InboundHttpLog, log=runtime.inbound_log, max_body_bytes=settings.api.max_body_bytes)
    app.include_router(fhir.router)
    app.include_router(tasks.router)
    app.include_router(audit_events.router)
    app.include_router(operations.router)
    app.include_router(oauth.router)
    app.include_router(signin.router)
    app.include_router(pad.router)
    app.include_router(monitor.router)
    app.include_router(monitor_json.router)
    app.include_router(monitor_inbound.router)
    app.include_router(metrics.router)
    app.add_api_route("/openapi.json", lambda: app.openapi(), include_in_schema=False)
    for templates in (pad.templates, signin.templates, monitor.templates):
        templates.env.globals["csrf_token"] = web.csrf_token
    return app


def _install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _gateway_error(request: Request, exc: GatewayError) -> Response:
    refused_here(exc)  # the inbound log records what the sender is told
    if not isinstance(exc, SenderError):
        log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
    if isinstance(exc, Unauthenticated) and web.wants_page(request) and _is_page(request):
        return web.to_signin(request)
    if "text/html" in request.headers.get("accept", "") and _is_page(request):
        return _error_page(request, exc)
    return fhir_response(request, operation_outcome(exc), exc.http_status, exc.headers or None)


def _error_page(request: Request, exc: GatewayError) -> Response:
    """A person's browser gets the error as a page it can show, not a FHIR resource to download."""
    title = HTTPStatus(exc.http_status).phrase
    context = {"title": title, "message": exc.message}
    return ERROR_PAGES.TemplateResponse(request, "error.html", context, exc.http_status, exc.headers or None)


def _is_page(request: Request) -> bool:
    rule = policy.rule_for(request.method, route_path(request))
    return rule is not None and rule.cookie


async def _request_invalid(request: Request, exc: RequestValidationError) -> Response:
    issues = [Issue(str(e.get("msg")), ".".join(str(p) for p in e.get("loc", ())), "invalid") for e in exc.errors()]
    return await _gateway_error(request, MalformedInput("the request is not valid", *issues))


async def _http_error(request: Request, exc: HTTPException) -> Response:
    error: GatewayError
    if exc.status_code == 404:
        error = NotFound(f"{request.method} {request.url.path} is not a route of this server")
    else:
        error = SenderError(str(exc.detail))
        error.http_status = exc.status_code
    return await _gateway_error(request, error)


async def _unexpected(request: Request, exc: Exception) -> Response:
    incident = uuid.uuid4()
    log.exception("unexpected error, incident %s, on %s %s", incident, request.method, request.url.path)
    return fhir_response(request, operation_outcome(GatewayError(f"internal error; incident {incident}")), 500)


class _TransactionHeaders:
    """Around every request, as plain ASGI (BaseHTTPMiddleware would cost a task and a stream per
    request): the correlation id bound for the logs, a declared body over the limit refused with
    413, and X-Request-Id and X-Correlation-Id echoed on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        token = bind_correlation(request.headers.get("x-correlation-id") or request.headers.get("x-request-id"))
        try:
            await self._answer(request, receive, _echoing(request, send))
        finally:
            correlation.reset(token)

    async def _answer(self, request: Request, receive: Receive, send: Send) -> None:
        limit = request.app.state.runtime.settings.api.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            error = SenderError(f"the body is larger than {limit} bytes")
            error.http_status = 413
            response = await _gateway_error(request, error)
            await response(request.scope, receive, send)
        else:
            await self.app(request.scope, receive, send)


def _echoing(request: Request, send: Send) -> Send:
    """`send`, with the transaction headers added to the response's start."""

    async def echo(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name in ("x-request-id", "x-correlation-id"):
                value = request.headers.get(name) or (
                    getattr(request.state, "correlation_id", None) if name == "x-correlation-id" else None
                )
                if value:
                    headers[name] = value
        await send(message)

    return echo
