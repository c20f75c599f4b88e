"""Sign-in for people: `GET /signin` shows the form, `POST /signin` checks the password (scrypt hash,
rate-limited per user name) and sets the signed session cookie, `POST /signout` ends the session.

The sign-in form is protected from login CSRF by a double-submit token (web.py). A wrong user name
or password gets one message for both, and every attempt is audited.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from gateway.api.deps import RuntimeDep
from gateway.audit.context import Actor
from gateway.audit.events import REFUSED, SUCCESS
from gateway.auth import web
from gateway.auth.principal import Principal
from gateway.errors import GatewayError
from gateway.runtime import Runtime

router = APIRouter(tags=["sign-in"])
templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")
DEFAULT_PAGE = "/pad"
FAILED = "The user name or password is not right"


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request) -> Response:
    target = web.local_target(request.query_params.get("next"), DEFAULT_PAGE)
    return _form(request, target)


@router.post("/signin")
async def signin(request: Request, runtime: RuntimeDep) -> Response:
    form = await request.form()
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    target = web.local_target(str(form.get("next") or ""), DEFAULT_PAGE)
    try:
        await web.check_signin_csrf(request)
    except GatewayError as error:
        await _audit(runtime, request, username, REFUSED, error.message)
        return _form(request, target, username, error.message, 403)
    principal, refusal = await _check(runtime, username, password)
    if principal is None:
        await _audit(runtime, request, username, REFUSED, f"sign-in refused: {refusal}")
        return _form(request, target, username, refusal, 401)
    session = runtime.auth.open_session(principal)
    await _audit(runtime, request, username, SUCCESS, "signed in", principal.ods)
    response = RedirectResponse(target, status_code=303)
    web.start_session(request, response, session.token, session.expires_in)
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    response = RedirectResponse("/signin", status_code=303)
    web.end_session(request, response)
    return response


async def _check(runtime: Runtime, username: str, password: str) -> tuple[Principal | None, str]:
    verdict = runtime.auth.limiter.take(f"signin:{username}")
    if not verdict.allowed:
        return None, f"Too many attempts: try again in {verdict.retry_after_s} seconds"
    if not username or not password:
        return None, FAILED
    return await runtime.auth.registry.check("person", username, password), FAILED


def _form(request: Request, target: str, username: str = "", error: str | None = None, status: int = 200) -> Response:
    token = web.new_token()
    context = {"next": target, "username": username, "error": error, "csrf": token}
    response = templates.TemplateResponse(request, "auth/signin.html", context, status_code=status)
    web.signin_challenge(request, response, token)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="referral-gateway"'
    return response


async def _audit(
    runtime: Runtime, request: Request, username: str, outcome: str, text: str, ods: str | None = None
) -> None:
    actor = Actor(username or "unknown", "person", ods, request.client.host if request.client else None)
    await runtime.audit.note("sign-in", outcome=outcome, description=text, actor=actor)
