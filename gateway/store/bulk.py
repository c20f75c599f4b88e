"""Appending rows to several tables at once, in the caller's transaction.

On PostgreSQL the whole append is one statement: each table's rows go in as one array per column
(`INSERT ... SELECT * FROM unnest(...)`), the tables chained as data-modifying CTEs. A batch then costs
one round trip whatever its size, and the statement's text depends only on which tables it writes, so
the driver keeps it prepared. A referral's commit writes up to eight tables; a statement each had made
the round trips most of a PostgreSQL commit's time. Elsewhere (SQLite, in process) each table is one
executemany.

Must not: decide what is written, or reorder a table's rows (the group commit inserts referrals in key
order, so that two processes holding the same referrals wait on each other rather than deadlock).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, TextClause, bindparam, insert, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect

Rows = Mapping[Table, Sequence[dict[str, Any]]]


def insert_all(conn: Connection, rows: Rows) -> None:
    """Append each table's rows (every row of a table with the same columns), in table order."""
    tables = [(table, list(batch)) for table, batch in rows.items() if batch]
    if not tables:
        return
    for table, batch in tables:
        if any(row.keys() != batch[0].keys() for row in batch):
            raise ValueError(f"rows for {table.name} differ in their columns")
    if conn.dialect.name != "postgresql":
        for table, batch in tables:
            conn.execute(insert(table), batch)
        return
    _one_statement(conn, tables)


def merged(*parts: Rows) -> dict[Table, list[dict[str, Any]]]:
    """Several writers' rows as one append: tables in the order first named, rows in the parts' order."""
    together: dict[Table, list[dict[str, Any]]] = {}
    for part in parts:
        for table, batch in part.items():
            together.setdefault(table, []).extend(batch)
    return together


def _one_statement(conn: Connection, tables: list[tuple[Table, list[dict[str, Any]]]]) -> None:
    shape = tuple((table, tuple(batch[0])) for table, batch in tables)
    values = {
        f"t{t}_{c}": [row[name] for row in batch]
        for t, (_, batch) in enumerate(tables)
        for c, name in enumerate(batch[0])
    }
    conn.execute(_statement(shape, conn.dialect), values)


@functools.lru_cache(maxsize=256)
def _statement(shape: tuple[tuple[Table, tuple[str, ...]], ...], dialect: Dialect) -> TextClause:
    """One statement for tables with these columns: built once, so SQLAlchemy and the driver reuse it."""
    quote, params, inserts = dialect.identifier_preparer, [], []
    for t, (table, names) in enumerate(shape):
        arrays = []
        for c, name in enumerate(names):
            column, param = table.c[name], f"t{t}_{c}"
            arrays.append(f"CAST(:{param} AS {column.type.compile(dialect=dialect)}[])")
            params.append(bindparam(param, type_=ARRAY(column.type)))
        columns = ", ".join(quote.quote(name) for name in names)
        inserts.append(f"INSERT INTO {quote.format_table(table)} ({columns}) SELECT * FROM unnest({', '.join(arrays)})")
    *first, last = inserts
    chained = ", ".join(f"t{t} AS ({sql})" for t, sql in enumerate(first))
    return text(f"WITH {chained} {last}" if first else last).bindparams(*params)
