"""The partners and people the gateway knows: adding them (the secret is shown once and only its
hash kept), checking a secret or password, and whether a token's holder is still known.

`active` answers from a short cache (`AUTH_REGISTRY_CACHE_S`), so a removed partner's tokens stop
working within seconds without a store read on every request. Must not: issue tokens (tokens.py).
"""

from __future__ import annotations

import asyncio
import time

from gateway.auth import hashing
from gateway.auth.principal import Principal, parse_roles, parse_scopes
from gateway.canonical import ods as ods_codes
from gateway.errors import Issue, MalformedInput
from gateway.store.credentials import Credential, Credentials, Kind
from gateway.store.store import Store, now


class Registry:
    def __init__(self, store: Store, cache_s: float) -> None:
        self.credentials = Credentials(store)
        self._cache_s = cache_s
        self._known: dict[tuple[Kind, str], tuple[float, bool]] = {}

    async def add(
        self,
        kind: Kind,
        identifier: str,
        *,
        ods: str,
        scopes: str,
        name: str = "",
        all_organisations: bool = False,
        roles: str = "",
        secret: str | None = None,
    ) -> str:
        """Add a partner client or a person; returns the secret (generated for a client if not given)."""
        _check_new(identifier, ods, scopes, roles)
        secret = secret or hashing.new_secret()
        credential = Credential(
            id=identifier,
            kind=kind,
            name=name or identifier,
            ods=ods.upper(),
            scopes=" ".join(sorted(parse_scopes(scopes))),
            all_organisations=all_organisations,
            roles=" ".join(sorted(parse_roles(roles))),
            secret_hash=await asyncio.to_thread(hashing.hash_secret, secret),
            created_at=now(),
        )
        await self.credentials.add(credential)
        return secret

    async def check(self, kind: Kind, identifier: str, secret: str) -> Principal | None:
        """The principal if the secret (or password) is right; None otherwise, in about the same time."""
        found = await self.credentials.get(kind, identifier)
        if found is None:
            await asyncio.to_thread(hashing.burn_time, secret)
            return None
        if not await asyncio.to_thread(hashing.verify, secret, found.secret_hash):
            return None
        return principal(found)

    async def active(self, kind: Kind, identifier: str) -> bool:
        cached = self._known.get((kind, identifier))
        if cached is not None and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        known = await self.credentials.get(kind, identifier) is not None
        self._known[(kind, identifier)] = (time.monotonic(), known)
        return known

    async def remove(self, kind: Kind, identifier: str) -> bool:
        self._known.pop((kind, identifier), None)
        return await self.credentials.remove(kind, identifier)


def principal(credential: Credential) -> Principal:
    return Principal(
        id=credential.id,
        kind=credential.kind,
        ods=credential.ods,
        scopes=parse_scopes(credential.scopes),
        all_organisations=credential.all_organisations,
        roles=parse_roles(credential.roles),
    )


def _check_new(identifier: str, ods: str, scopes: str, roles: str) -> None:
    if not identifier or len(identifier) > 64 or not identifier.isprintable() or ":" in identifier:
        raise MalformedInput(f"'{identifier}' cannot be a client id or user name: 1 to 64 characters, no ':'")
    if not ods_codes.is_valid(ods.upper()):
        raise MalformedInput(f"'{ods}' is not an ODS code", Issue("an ODS organisation code", "ods"))
    try:
        parse_scopes(scopes)
        parse_roles(roles)
    except ValueError as exc:
        raise MalformedInput(str(exc)) from exc
