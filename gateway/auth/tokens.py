"""Signed tokens (JWT, HS256, PyJWT): OAuth2 access tokens for partners' systems (RFC 9068 shape,
`typ: at+jwt`) and session cookies for people (`typ: session`). The two types have different
audiences, so a session cookie never passes as a bearer token or the other way round.

Checking verifies the signature, expiry (with a little clock skew), issuer, audience and type, and
turns every failure into `Unauthenticated` with the reason. Must not: look up partners (the guard
checks they still exist) or log a token.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from gateway.auth.principal import Principal, parse_roles, parse_scopes
from gateway.errors import Unauthenticated

ALGORITHM = "HS256"
ACCESS, SESSION = "at+jwt", "session"
_AUDIENCES = {ACCESS: "referral-gateway/api", SESSION: "referral-gateway/web"}
_NAMES = {ACCESS: "an access token", SESSION: "a session"}
_REMEMBERED = 4096  # tokens kept verified: a partner's system sends the same one until it expires


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    scope: str


class TokenSigner:
    def __init__(self, key: bytes, issuer: str, clock_skew_s: int) -> None:
        self._key = key
        self._issuer = issuer
        self._skew = clock_skew_s
        self._verified: dict[tuple[str, str], tuple[Principal, float, float]] = {}  # -> (principal, from, to)

    def issue(self, principal: Principal, kind: str, ttl_s: int) -> IssuedToken:
        now = int(time.time())
        scope = " ".join(sorted(principal.scopes))
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": principal.id,
            "aud": _AUDIENCES[kind],
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": str(uuid.uuid4()),
            "client_id": principal.id,
            "scope": scope,
            "ods": principal.ods,
            "all_organisations": principal.all_organisations,
            "roles": " ".join(sorted(principal.roles)),
            "kind": principal.kind,
        }
        if kind == SESSION:
            claims["csrf"] = secrets.token_urlsafe(24)
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"typ": kind})
        return IssuedToken(token, ttl_s, scope)

    def verify(self, token: str, kind: str) -> Principal:
        """The token's principal. A token once verified is remembered until it expires: the same
        string keeps the same signature and claims, so only the clock is checked again."""
        key, at = (token, kind), time.time()
        known = self._verified.get(key)
        if known is not None:
            principal, valid_from, valid_to = known
            if valid_from <= at <= valid_to:
                return principal
            del self._verified[key]  # expired (or not yet valid): verified again, to fail with the reason
        claims = self._claims(token, kind)
        principal = self._principal(claims, kind)
        if len(self._verified) >= _REMEMBERED:
            del self._verified[next(iter(self._verified))]  # the oldest
        valid_from = max(float(claims["nbf"]), float(claims["iat"])) - self._skew
        self._verified[key] = (principal, valid_from, float(claims["exp"]) + self._skew)
        return principal

    def _principal(self, claims: dict[str, Any], kind: str) -> Principal:
        try:
            scopes = parse_scopes(str(claims.get("scope", "")))
            roles = parse_roles(str(claims.get("roles", "")))
        except ValueError as exc:
            raise Unauthenticated(f"the token names {exc}") from exc
        return Principal(
            id=str(claims["sub"]),
            kind="person" if claims.get("kind") == "person" else "client",
            ods=str(claims.get("ods", "")),
            scopes=scopes,
            all_organisations=claims.get("all_organisations") is True,
            roles=roles,
            via_cookie=kind == SESSION,
            csrf=str(claims.get("csrf", "")),
        )

    def _claims(self, token: str, kind: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=_AUDIENCES[kind],
                issuer=self._issuer,
                leeway=self._skew,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired; ask for a new one") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("the token's signature does not match") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from exc
        if header.get("typ") != kind:
            raise Unauthenticated(f"the token is not {_NAMES[kind]}")
        return claims
