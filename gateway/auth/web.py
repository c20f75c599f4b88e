"""What the web pages need from authentication: the session cookie (signed, HttpOnly, SameSite=Lax,
Secure behind https), the CSRF token forms carry, and sending a browser to /signin.

CSRF: a signed-in person's form POST must carry the session's token (`_csrf` field or X-CSRF-Token
header), and a cross-site Origin is refused outright. The sign-in form itself, before any session,
uses a double-submit cookie. Must not: check passwords (registry) or scopes (policy).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from gateway.auth.principal import Principal
from gateway.errors import Forbidden

SESSION_COOKIE = "gateway_session"
SIGNIN_COOKIE = "gateway_signin"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def secure(request: Request) -> bool:
    base = request.app.state.runtime.settings.api.base_url or ""
    return request.url.scheme == "https" or str(base).startswith("https://")


def start_session(request: Request, response: Response, token: str, ttl_s: int) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=ttl_s, path="/", httponly=True, samesite="lax", secure=secure(request)
    )
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")


def end_session(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure(request))


def csrf_token(request: Request) -> str:
    """For templates: the token a form of the signed-in person must carry ('' for bearer callers)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal.csrf if principal is not None and principal.via_cookie else ""


async def check_csrf(request: Request, principal: Principal) -> None:
    _same_origin(request)
    presented = request.headers.get(CSRF_HEADER) or await _form_field(request, CSRF_FIELD)
    if not presented or not principal.csrf or not hmac.compare_digest(presented, principal.csrf):
        raise Forbidden("the form's security token is missing or out of date: reload the page and send it again")


def signin_challenge(request: Request, response: Response, token: str) -> None:
    """Set the double-submit cookie for the sign-in form (before there is a session)."""
    response.set_cookie(
        SIGNIN_COOKIE, token, max_age=3600, path="/signin", httponly=True, samesite="strict", secure=secure(request)
    )


def new_token() -> str:
    return secrets.token_urlsafe(24)


async def check_signin_csrf(request: Request) -> None:
    _same_origin(request)
    cookie = request.cookies.get(SIGNIN_COOKIE, "")
    presented = await _form_field(request, CSRF_FIELD)
    if not cookie or not presented or not hmac.compare_digest(cookie, presented):
        raise Forbidden("the sign-in form is out of date: reload the page and sign in again")


def wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def to_signin(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?next={quote(target, safe='/')}", status_code=303)


def local_target(target: str | None, default: str) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def _same_origin(request: Request) -> None:
    """Browsers send Origin with every POST; a form from anywhere else (or an opaque 'null') is refused."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    base = request.app.state.runtime.settings.api.base_url
    allowed = {f"{request.url.scheme}://{request.url.netloc}", *([_origin_of(base)] if base else [])}
    if origin.rstrip("/") not in allowed:
        raise Forbidden(f"a form from {origin} may not be sent here")


def _origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0]}"


async def _form_field(request: Request, name: str) -> str | None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in FORM_TYPES:
        return None
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else None
