"""`POST /oauth2/token`: the gateway issues access tokens to its partners' systems (RFC 6749 §4.4,
client credentials). The client authenticates with HTTP Basic or `client_id` / `client_secret` in
the form (not both); `scope` may ask for fewer scopes than the client holds, never more.

Errors are RFC 6749 §5.2 JSON (`error`, `error_description`), not OperationOutcomes: this is the
OAuth2 surface. Attempts are rate-limited per client id before the secret is checked (scrypt is
costly on purpose), and every issue or refusal is audited.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData

from gateway.api.deps import RuntimeDep
from gateway.audit.context import Actor
from gateway.audit.events import REFUSED, SUCCESS
from gateway.auth.principal import Principal, parse_scopes
from gateway.runtime import Runtime

router = APIRouter(tags=["OAuth2"])
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="referral-gateway"'}


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.error, self.description, self.status, self.headers = error, description, status, headers or {}

    def response(self) -> Response:
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, self.status, {**NO_STORE, **self.headers})


@router.post("/oauth2/token")
async def token(request: Request, runtime: RuntimeDep) -> Response:
    client_id = "unknown"
    try:
        form = await _form(request)
        client_id, secret = _client_credentials(request.headers.get("authorization"), form)
        principal = await _grant(runtime, request, form, client_id, secret)
    except OAuthError as error:
        await _audit(runtime, request, client_id, REFUSED, f"token refused: {error.error}: {error.description}")
        return error.response()
    issued = runtime.auth.issue(principal)
    await _audit(runtime, request, client_id, SUCCESS, f"token issued, scope: {issued.scope}", principal.ods)
    body = {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }
    return JSONResponse(body, 200, NO_STORE)


async def _form(request: Request) -> FormData:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM:
        raise OAuthError("invalid_request", f"send the parameters as {FORM}")
    form = await request.form()
    grant = form.get("grant_type")
    if not grant:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant != "client_credentials":
        raise OAuthError("unsupported_grant_type", "this server issues tokens for grant_type=client_credentials only")
    return form


def _client_credentials(header: str | None, form: FormData) -> tuple[str, str]:
    in_form = form.get("client_id"), form.get("client_secret")
    if header:
        if any(in_form):
            raise OAuthError("invalid_request", "authenticate with HTTP Basic or with the form, not both")
        return _basic(header)
    client_id, secret = in_form
    if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id or not secret:
        raise OAuthError("invalid_client", "client authentication is required (HTTP Basic)", 401, BASIC_CHALLENGE)
    return client_id, secret


def _basic(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.strip().partition(" ")
    try:
        if scheme.lower() != "basic":
            raise ValueError(scheme)
        client_id, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "the Authorization header is not HTTP Basic", 401, BASIC_CHALLENGE) from exc
    if not sep or not client_id:
        raise OAuthError("invalid_client", "HTTP Basic needs client_id:client_secret", 401, BASIC_CHALLENGE)
    return unquote_plus(client_id), unquote_plus(secret)  # RFC 6749 §2.3.1: form-encoded before Basic


async def _grant(runtime: Runtime, request: Request, form: FormData, client_id: str, secret: str) -> Principal:
    verdict = runtime.auth.limiter.take(f"token:{client_id}")
    if not verdict.allowed:
        retry = {"Retry-After": str(verdict.retry_after_s)}
        raise OAuthError("temporarily_unavailable", "too many token requests for this client", 429, retry)
    principal = await runtime.auth.registry.check("client", client_id, secret)
    if principal is None:
        raise OAuthError("invalid_client", "unknown client or wrong secret", 401, BASIC_CHALLENGE)
    return _narrowed(principal, form.get("scope"))


def _narrowed(principal: Principal, asked: object) -> Principal:
    if not isinstance(asked, str) or not asked.strip():
        return principal
    try:
        scopes = parse_scopes(asked)
    except ValueError as exc:
        raise OAuthError("invalid_scope", str(exc)) from exc
    beyond = sorted(scopes - principal.scopes)
    if beyond:
        raise OAuthError("invalid_scope", f"this client does not hold {' '.join(beyond)}")
    return replace(principal, scopes=scopes)


async def _audit(
    runtime: Runtime, request: Request, client_id: str, outcome: str, text: str, ods: str | None = None
) -> None:
    actor = Actor(client_id, "client", ods, request.client.host if request.client else None)
    await runtime.audit.note("token", outcome=outcome, description=text, actor=actor)
