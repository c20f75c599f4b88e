"""`Authority`: the gateway's one keeper of credentials, started by the runtime. It holds the token
signer (with the key from settings or the data directory), the registry of partners and people,
and the per-caller rate limiter; it turns a request's credentials into a `Principal`.

    Authorization: Bearer <access token>   any route the policy does not make public
    session cookie                          web pages only (policy `page`), with CSRF on form POSTs

Must not: decide which routes need what (policy.py) or which referrals a principal sees (access.py).
"""

from __future__ import annotations

import logging

from fastapi import Request

from gateway.auth import bootstrap, web
from gateway.auth.keys import signing_key
from gateway.auth.principal import Principal
from gateway.auth.ratelimit import RateLimiter
from gateway.auth.registry import Registry
from gateway.auth.tokens import ACCESS, SESSION, IssuedToken, TokenSigner
from gateway.errors import GatewayError, Unauthenticated
from gateway.settings import Settings
from gateway.store import Store

log = logging.getLogger(__name__)


class Authority:
    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self.registry = Registry(store, settings.auth.registry_cache_s)
        self.limiter = RateLimiter(settings.auth.rate_limit_per_s, settings.auth.rate_limit_burst)
        self._signer: TokenSigner | None = None

    async def start(self) -> None:
        if self._signer is not None:
            return
        auth = self._settings.auth
        self._signer = TokenSigner(signing_key(self._settings), auth.issuer, auth.clock_skew_s)
        await bootstrap.local_partner(self.registry, self._settings)

    async def stop(self) -> None:
        return None

    @property
    def signer(self) -> TokenSigner:
        if self._signer is None:
            raise GatewayError("the gateway's authority is not started")
        return self._signer

    def issue(self, principal: Principal) -> IssuedToken:
        return self.signer.issue(principal, ACCESS, self._settings.auth.token_ttl_s)

    def open_session(self, principal: Principal) -> IssuedToken:
        return self.signer.issue(principal, SESSION, self._settings.auth.session_ttl_s)

    async def authenticate(self, request: Request, cookie_ok: bool) -> Principal:
        """The request's principal; raises `Unauthenticated` with the reason."""
        header = request.headers.get("authorization")
        session = request.cookies.get(web.SESSION_COOKIE) if cookie_ok else None
        if header:
            principal = self.signer.verify(_bearer(header), ACCESS)
        elif session:
            principal = self.signer.verify(session, SESSION)
        else:
            raise Unauthenticated(_how_to_authenticate(cookie_ok), error=None)
        if not await self.registry.active(principal.kind, principal.id):
            raise Unauthenticated(f"'{principal.id}' is no longer known here")
        return principal


def _bearer(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <access token>'", error="invalid_request")
    return token.strip()


def _how_to_authenticate(cookie_ok: bool) -> str:
    if cookie_ok:
        return "sign in at /signin, or send a bearer token from POST /oauth2/token"
    return "this route needs a bearer token: get one from POST /oauth2/token (client credentials)"
