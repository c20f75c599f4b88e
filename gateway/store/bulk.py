"""Appending rows to several tables at once, in the caller's transaction.

On PostgreSQL the whole append is one statement: each table's rows go in as one array per column
(`INSERT ... SELECT * FROM unnest(...)`), the tables chained as data-modifying CTEs. A batch then costs
one round trip whatever its size, and the statement's text depends only on which tables it writes, so
the driver keeps it prepared. A referral's commit writes up to eight tables; a statement each had made
the round trips most of a PostgreSQL commit's time. Elsewhere (SQLite, in process) each table is one
executemany of a statement compiled once per (table, columns), its values handed to the driver as plain
tuples (`execute_many`): SQLAlchemy compiling and binding each row's parameters had been a fifth of
the gateway's CPU per HL7 v2 message.

Must not: decide what is written, or reorder a table's rows (the group commit inserts referrals in key
order, so that two processes holding the same referrals wait on each other rather than deadlock).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Insert,
    Table,
    TextClause,
    TypeDecorator,
    Update,
    bindparam,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

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
            execute_many(conn, _insert(table), batch)
        return
    _one_statement(conn, tables)


def execute_many(conn: Connection, statement: Insert | Update, rows: Sequence[Mapping[str, Any]]) -> None:
    """`statement` once per row (rows with the same keys), as one executemany of plain tuples where
    the driver is positional and in process (SQLite); elsewhere through SQLAlchemy as usual. The
    statement is compiled once for its keys: pass one built once (module level, or `_insert`)."""
    if not rows:
        return
    prepared = _prepared(statement, tuple(rows[0]), conn.dialect) if conn.dialect.name == "sqlite" else None
    if prepared is None:
        conn.execute(statement, list(rows))
        return
    conn.exec_driver_sql(prepared.sql, prepared.values(rows))


@dataclass(frozen=True)
class _Prepared:
    sql: str  # the driver's text, positional
    row_values: Callable[[Mapping[str, Any]], Any]  # a row's values in the text's order
    processed: tuple[tuple[int, Callable[[Any], Any], bool], ...]  # position, bind processor, a timestamp?

    def values(self, rows: Sequence[Mapping[str, Any]]) -> list[Sequence[Any]]:
        if not self.processed:
            return [self.row_values(row) for row in rows]
        # a batch's rows share their timestamps: each distinct one is formatted once per column
        done: list[dict[Any, Any]] = [{} for _ in self.processed]
        out: list[Sequence[Any]] = []
        for row in rows:
            values = list(self.row_values(row))
            for (i, process, timestamp), seen in zip(self.processed, done, strict=True):
                value = values[i]
                if not timestamp or value is None:
                    values[i] = process(value)
                elif value in seen:
                    values[i] = seen[value]
                else:
                    values[i] = seen[value] = process(value)
            out.append(tuple(values))
        return out


@functools.lru_cache(maxsize=64)
def _insert(table: Table) -> Insert:
    return insert(table)


@functools.lru_cache(maxsize=256)
def _prepared(statement: Insert | Update, keys: tuple[str, ...], dialect: Dialect) -> _Prepared | None:
    """The driver's SQL, how to read a row's values in its order, and the bind processors; None where
    a column would take a Python-side default SQLAlchemy fills in (the plain path would leave it
    out)."""
    table = statement.table
    if isinstance(table, Table) and any(c.name not in keys and _filled_in(c, statement) for c in table.columns):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    order = tuple(compiled.positiontup or ())
    if set(order) != set(keys):
        return None
    types = [compiled.binds[name].type for name in order]
    processors = [t.dialect_impl(dialect).bind_processor(dialect) for t in types]
    processed = tuple((i, p, _timestamp(types[i])) for i, p in enumerate(processors) if p is not None)
    row_values = operator.itemgetter(*order) if len(order) > 1 else (lambda row: (row[order[0]],))
    return _Prepared(compiled.string, row_values, processed)


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


def _timestamp(type_: TypeEngine[Any]) -> bool:
    impl = type_.impl_instance if isinstance(type_, TypeDecorator) else type_
    return isinstance(impl, DateTime)


def _filled_in(column: Column[Any], statement: Insert | Update) -> bool:
    return column.onupdate is not None or (isinstance(statement, Insert) and column.default is not None)


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
