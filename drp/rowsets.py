"""Set-based writes of many rows in one statement, for the timescale run's chunks
(drp.batch): INSERT rows (RETURNING what the caller names) and the version-guarded UPDATE of
alerts.

- PostgreSQL: an INSERT without RETURNING is a COPY (the outbox rows of a chunk); one with
  RETURNING and the UPDATE send the rows as one JSON document, read by
  json_populate_recordset into the table's own row type: one round trip, one short
  statement, one parameter.
- SQLite (in process): the statement compiled once a process, each row's values turned into
  what the driver takes by the columns' own bind processors (SQLAlchemy's, so the stored text
  is byte for byte what the ORM and Core write), each shared value (the run's instant, on
  every row) converted once, then the driver's executemany, or for RETURNING one multi-row
  VALUES. SQLAlchemy's own executemany builds and converts every parameter of every row
  again: a tenth of a timescale run.
- Elsewhere: SQLAlchemy's executemany."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Hashable
from datetime import date, datetime
from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy import (
    JSON,
    DateTime,
    Integer,
    Text,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError

from .models import Alert

ALERT = cast(Any, Alert).__table__
# SQLite's limit on a statement's parameters (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
SQLITE_PARAMETERS = 32_766


def insert_rows(connection: Connection, table: Any, rows: list[dict[str, Any]],
                *returning: str) -> list[Any]:
    """INSERT `rows` (each with the same columns) in one statement, RETURNING the columns
    named (in no particular order). On PostgreSQL, without RETURNING a COPY; with it the
    rows go as one JSON document, read by json_populate_recordset into the table's own row
    type: one round trip, one short statement and one parameter, where an executemany sends
    a statement a row (or, with RETURNING, a multi-row VALUES whose every placeholder the
    driver parses). Elsewhere (SQLite, in process) the driver's executemany."""
    if not rows:
        return []
    if connection.dialect.name == "sqlite":
        return _sqlite_insert(connection, table, rows, returning)
    if connection.dialect.name != "postgresql":
        statement = insert(table)
        if returning:
            statement = statement.returning(*(table.c[name] for name in returning))
        result = connection.execute(statement, rows)
        return list(result) if returning else []
    if not returning and _copyable(connection, table, tuple(rows[0])):  # (COPY returns none)
        _pg_copy(connection, table, rows)
        return []
    names = list(rows[0])
    source = _recordset(connection, table, names)
    statement = insert(table).from_select(names, select(*(source.c[n] for n in names)))
    if returning:
        statement = statement.returning(*(table.c[name] for name in returning))
    result = connection.execute(statement, {"rows": _json_rows(rows)})
    return list(result) if returning else []


def update_alerts(connection: Connection, rows: list[dict[str, Any]]) -> int:
    """UPDATE each alert `rows` name (each with the same columns: its `id`, the `version`
    read, and its new values), guarded by that version, which moves on by one; returns how
    many were written. On PostgreSQL one UPDATE ... FROM json_populate_recordset (one round
    trip, one short statement, as insert_rows); elsewhere the driver's executemany (on
    SQLite, of the values as `_processed` makes them)."""
    if not rows:
        return 0
    columns = [name for name in rows[0] if name not in ("id", "version")]
    if connection.dialect.name != "postgresql":
        statement = update(ALERT).where(
            ALERT.c.id == bindparam("b_id"), ALERT.c.version == bindparam("b_version")
        ).values({**{name: bindparam(f"new_{name}", type_=ALERT.c[name].type)
                     for name in columns}, "version": ALERT.c.version + 1})
        params = [{"b_id": r["id"], "b_version": r["version"],
                   **{f"new_{name}": r[name] for name in columns}} for r in rows]
        if connection.dialect.name == "sqlite":
            return _sqlite_executemany(connection, ("update", tuple(columns)), statement,
                                       params)
        return int(connection.execute(statement, params).rowcount)
    source = _recordset(connection, ALERT, list(rows[0]))
    statement = update(ALERT).where(
        ALERT.c.id == source.c.id, ALERT.c.version == source.c.version
    ).values({**{name: source.c[name] for name in columns}, "version": ALERT.c.version + 1})
    return int(connection.execute(statement, {"rows": _json_rows(rows)}).rowcount)


def _copyable(connection: Connection, table: Any, names: tuple[str, ...]) -> bool:
    """May these rows go by COPY and be stored as SQLAlchemy's INSERT would store them? Only
    through psycopg 3 (the driver drp names; others have no `copy`), and only where the rows
    give every column that has a default of SQLAlchemy's (COPY would leave it NULL), each
    under its column's own name, with no SQL of the type's to wrap the value, and no instant
    bound for a column without a zone (its text's offset would be ignored)."""
    if connection.dialect.driver != "psycopg":
        return False
    given = set(names)
    if any(c.default is not None and c.name not in given for c in table.c):
        return False
    for name in names:
        column = table.c.get(name)
        if column is None or column.name != name:
            return False
        kind = column.type
        impl = getattr(kind, "impl", kind)
        if kind._has_bind_expression or (isinstance(impl, DateTime) and not impl.timezone):
            return False
    return True


def _pg_copy(connection: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL through psycopg 3, no RETURNING: COPY the rows in, in the connection's
    transaction (begun if it was not: as SQLAlchemy's own execution would), for the outbox
    rows of a run's chunk: 8,000 rows 0.12 s, against 0.31-0.34 s as one JSON document, whose
    every message context is a string escaped inside it. Each value through its column's bind
    processor (as SQLAlchemy's INSERT would send it: an instant in UTC, a JSON column's value
    as its text), the driver's COPY writing each as PostgreSQL reads it; the driver's errors
    raised as SQLAlchemy's (an IntegrityError, an OperationalError), as its execution raises
    them."""
    names = list(rows[0])
    dialect = connection.dialect
    quote = dialect.identifier_preparer
    params: list[_Param] = [
        (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect), _ROW)
        for name in names]
    if not connection.in_transaction():
        connection.begin()
    sql = (f"COPY {quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)})"
           " FROM STDIN")
    driver: Any = connection.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for values in _processed(params, rows):
                copy.write_row(values)
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            sql, None, exc, dialect.loaded_dbapi.Error,
            connection_invalidated=dialect.is_disconnect(exc, driver, None)) from exc


def _recordset(connection: Connection, table: Any, names: list[str]) -> Any:
    """PostgreSQL: the rows of the parameter `rows` (a JSON array of objects), read as the
    table's own row type (its columns' types), with the columns `names`."""
    quote = connection.dialect.identifier_preparer
    row_type: Any = literal_column("NULL::" + quote.format_table(table))  # the table's row
    return func.json_populate_recordset(
        row_type, sql_cast(bindparam("rows", type_=Text), JSON)).table_valued(*names)


def _json_rows(rows: list[dict[str, Any]]) -> str:
    # The rows of a chunk share their instants (each outbox row's `created_at` and
    # `next_attempt_at` is the run's, one object): each object written once. (By identity:
    # equal datetimes may differ in zone or fold, and so in their text.)
    written: dict[int, str] = {}

    def once(value: Any) -> str:
        found = written.get(id(value))
        if found is None:
            found = written[id(value)] = _as_json(value)
        return found

    return json.JSONEncoder(default=once, separators=(",", ":")).encode(rows)


def _as_json(value: Any) -> str:
    """Instants and days as PostgreSQL reads them (an instant always with its offset)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"a naive instant ({value.isoformat()}) for the database")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column's value")


# -- SQLite ----------------------------------------------------------------------------------
_ROW = object()  # a parameter taken from each row (not a constant of the statement)
_Param = tuple[str, Callable[[Any], Any] | None, Any]  # (name, bind processor, _ROW or value)
# Each dialect's own (an engine's settings, such as its JSON serializer, make its processors),
# by the statement's kind, its Table object and the rows' columns.
_COMPILED: WeakKeyDictionary[Dialect, dict[tuple[Hashable, ...], tuple[str, list[_Param]]]] = (
    WeakKeyDictionary())


def _compiled(connection: Connection, key: tuple[Hashable, ...], statement: Any,
              names: list[str]) -> tuple[str, list[_Param]]:
    """The statement's SQL for the driver (positional, as SQLite's dialect writes it) and, in
    the order of its placeholders, each parameter: its name and bind processor, and whether
    each row gives it (`names`) or it is the statement's own constant (`version + 1`);
    compiled once a process for each `key`. A column the rows leave out whose default the
    database would not supply is refused (SQLAlchemy's executemany would compute it)."""
    dialect = connection.dialect
    kept = _COMPILED.setdefault(dialect, {})
    found = kept.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect, column_keys=names)
        params: list[_Param] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.key in names:
                params.append((bind.key, process, _ROW))
            elif bind.callable is None and bind.value is not None:
                value = bind.value if process is None else process(bind.value)
                params.append((bind.key, None, value))
            else:
                raise TypeError(f"{key}: each row must give {bind.key!r}")
        found = kept[key] = (compiled.string, params)
    return found


def _processed(params: list[_Param], rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row's values in the placeholders' order, each through its column's processor (None
    too: a JSON column's None is JSON's null); a value shared by many rows in one column (one
    object: the run's instant) converted once."""
    columns: list[list[Any]] = []
    for name, process, const in params:
        if const is not _ROW:
            columns.append([const] * len(rows))
        elif process is None:
            columns.append([row[name] for row in rows])
        else:
            done: dict[int, Any] = {}  # (by identity: the rows hold every value meanwhile)
            column = []
            for row in rows:
                value = row[name]
                found = done.get(id(value), done)
                if found is done:
                    found = done[id(value)] = process(value)
                column.append(found)
            columns.append(column)
    return list(zip(*columns, strict=True))


def _sqlite_executemany(connection: Connection, key: tuple[Hashable, ...], statement: Any,
                        rows: list[dict[str, Any]]) -> int:
    """`statement` for each of `rows` (one executemany); the rows it changed."""
    sql, params = _compiled(connection, key, statement, list(rows[0]))
    return int(connection.exec_driver_sql(sql, _processed(params, rows)).rowcount)


def _sqlite_insert(connection: Connection, table: Any, rows: list[dict[str, Any]],
                   returning: tuple[str, ...]) -> list[Any]:
    key = ("insert", table, tuple(rows[0]))
    if not returning:
        _sqlite_executemany(connection, key, insert(table), rows)
        return []
    # RETURNING: one statement of many VALUES groups (the driver's executemany returns
    # nothing), in as few statements as SQLite's limit on parameters allows. The values come
    # back as the driver gives them, so only integer columns (ids, numbers) may be asked for.
    for name in returning:
        if not isinstance(table.c[name].type, Integer) or table.c[name].key != name:
            raise TypeError(f"RETURNING {table.name}.{name} on SQLite: integer columns only")
    sql, params = _compiled(connection, key, insert(table), list(rows[0]))
    head, _, group = sql.rpartition(" VALUES ")
    tail = " RETURNING " + ", ".join(connection.dialect.identifier_preparer.quote(name)
                                     for name in returning)
    values = _processed(params, rows)
    limit = _parameter_limit(connection)
    per = max(1, limit // max(1, len(params)))
    out: list[Any] = []
    for start in range(0, len(values), per):
        part = values[start:start + per]
        out += connection.exec_driver_sql(f"{head} VALUES {', '.join([group] * len(part))}{tail}",
                                          tuple(v for one in part for v in one)).all()
    return out


def _parameter_limit(connection: Connection) -> int:
    """This SQLite's limit on a statement's parameters, as its connection says (Python 3.11's
    getlimit), at most SQLITE_PARAMETERS."""
    driver: Any = connection.connection.driver_connection
    try:
        return min(SQLITE_PARAMETERS, int(driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)))
    except (AttributeError, sqlite3.Error):
        return SQLITE_PARAMETERS
