"""Partners' systems (OAuth2 clients) and people who sign in, as the store keeps them: names,
organisation, scopes and the scrypt hash of their secret or password.

Must not: hash or check secrets (gateway/auth does), or ever hold a secret in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, Table, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from gateway.errors import Conflict
from gateway.store.door import run_statements
from gateway.store.store import Store, now
from gateway.store.tables import auth_clients, auth_users

Kind = Literal["client", "person"]


@dataclass(frozen=True)
class Credential:
    id: str  # client id or user name
    kind: Kind
    name: str
    ods: str
    scopes: str  # space-separated
    all_organisations: bool
    roles: str  # space-separated
    secret_hash: str
    created_at: datetime


class Credentials:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, credential: Credential) -> None:
        table, key, secret = _columns(credential.kind)
        row = {
            key: credential.id,
            "name": credential.name,
            "ods": credential.ods,
            "scopes": credential.scopes,
            "all_organisations": credential.all_organisations,
            "roles": credential.roles,
            secret: credential.secret_hash,
            "created_at": now(),
        }
        try:
            await self._store.write(run_statements, insert(table).values(**row))
        except IntegrityError as exc:
            raise Conflict(f"{_noun(credential.kind)} '{credential.id}' exists already") from exc

    async def get(self, kind: Kind, identifier: str) -> Credential | None:
        table, key, _ = _columns(kind)
        async with self._store.door.read() as conn:
            row = (await conn.execute(select(table).where(table.c[key] == identifier))).first()
        return _credential(kind, row) if row else None

    async def all(self, kind: Kind) -> list[Credential]:
        table, key, _ = _columns(kind)
        async with self._store.door.read() as conn:
            rows = (await conn.execute(select(table).order_by(table.c[key]))).all()
        return [_credential(kind, r) for r in rows]

    async def remove(self, kind: Kind, identifier: str) -> bool:
        table, key, _ = _columns(kind)
        (removed,) = await self._store.write(run_statements, delete(table).where(table.c[key] == identifier))
        return bool(removed)

    async def count(self) -> int:
        async with self._store.door.read() as conn:
            clients = (await conn.execute(select(func.count()).select_from(auth_clients))).scalar_one()
            users = (await conn.execute(select(func.count()).select_from(auth_users))).scalar_one()
        return int(clients) + int(users)


def _columns(kind: Kind) -> tuple[Table, str, str]:
    if kind == "client":
        return auth_clients, "client_id", "secret_hash"
    return auth_users, "username", "password_hash"


def _noun(kind: Kind) -> str:
    return "partner client" if kind == "client" else "user"


def _credential(kind: Kind, row: Row[Any]) -> Credential:
    _, key, secret = _columns(kind)
    values = row._mapping
    return Credential(
        id=values[key],
        kind=kind,
        name=values["name"],
        ods=values["ods"],
        scopes=values["scopes"],
        all_organisations=bool(values["all_organisations"]),
        roles=values["roles"],
        secret_hash=values[secret],
        created_at=values["created_at"],
    )
