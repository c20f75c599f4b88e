"""The group commit's duplicate checks: which of a batch's referrals the store holds already, by
business identifier and by the sender's message id. Two queries a batch, whatever its size.

On SQLite each check is SQL written once per batch shape (how many values of each kind), its values
handed to the driver as they are: compiling the expanding IN lists each batch had cost as much as
the rest of the checks. Elsewhere the same query goes through SQLAlchemy. Either way each column is
also IN its own values, so SQLite searches the two-column index (`tables.pairs_among`).
Must not: decide what a duplicate means (the group commit answers it with the earlier referral).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Connection, select
from sqlalchemy.engine import Dialect

from gateway.store.tables import pairs_among, processed_messages, referrals

#: The referral's columns a check answers with, in this order, after the pair it matched.
COLUMNS = (
    "id",
    "version",
    "status",
    "resource",
    "nhs_number",
    "requester",
    "performer",
    "channel",
    "sender",
    "correlation_id",
    "topic",
    "rule",
    "updated_at",
)
Found = tuple[Any, ...]  # (first, second, *COLUMNS)


def by_identifier(conn: Connection, keys: list[tuple[str, str]]) -> list[Found]:
    first, second = referrals.c.identifier_system, referrals.c.identifier_value
    if conn.dialect.name == "sqlite":
        return _prepared(conn, first, second, keys, joined=False)
    query = select(first, second, *(referrals.c[c] for c in COLUMNS)).where(pairs_among(first, second, keys))
    return [tuple(r) for r in conn.execute(query).all()]


def by_message(conn: Connection, keys: list[tuple[str, str]]) -> list[Found]:
    if not keys:
        return []
    first, second = processed_messages.c.sender, processed_messages.c.message_id
    if conn.dialect.name == "sqlite":
        return _prepared(conn, first, second, keys, joined=True)
    query = (
        select(first, second, *(referrals.c[c] for c in COLUMNS))
        .join(processed_messages, processed_messages.c.referral_id == referrals.c.id)
        .where(pairs_among(first, second, keys))
    )
    return [tuple(r) for r in conn.execute(query).all()]


def _prepared(
    conn: Connection, first: Column[str], second: Column[str], keys: list[tuple[str, str]], *, joined: bool
) -> list[Found]:
    if not keys:
        return []
    firsts, seconds = sorted({a for a, _ in keys}), sorted({b for _, b in keys})
    sql = _sql(first.name, second.name, len(firsts), len(seconds), len(keys), joined)
    values = (*firsts, *seconds, *(v for pair in keys for v in pair))
    updated_at = _result_processor(conn.dialect)
    last = len(COLUMNS) + 1
    found: list[Found] = []
    for row in conn.exec_driver_sql(sql, values).all():
        found.append((*row[:last], updated_at(row[last]) if updated_at else row[last]))
    return found


@functools.lru_cache(maxsize=1024)
def _sql(first: str, second: str, firsts: int, seconds: int, pairs: int, joined: bool) -> str:
    table = "m" if joined else "r"
    columns = ", ".join(f'r."{c}"' for c in COLUMNS)
    source = (
        f'"{referrals.name}" AS r JOIN "{processed_messages.name}" AS m ON m."referral_id" = r."id"'
        if joined
        else f'"{referrals.name}" AS r'
    )
    a, b = f'{table}."{first}"', f'{table}."{second}"'
    return (
        f"SELECT {a}, {b}, {columns} FROM {source} "
        f"WHERE {a} IN ({', '.join('?' * firsts)}) AND {b} IN ({', '.join('?' * seconds)}) "
        f"AND ({a}, {b}) IN (VALUES {', '.join(['(?, ?)'] * pairs)})"
    )


@functools.lru_cache(maxsize=4)
def _result_processor(dialect: Dialect) -> Callable[[Any], Any] | None:
    column = referrals.c.updated_at
    processor: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).result_processor(dialect, None)
    return processor
