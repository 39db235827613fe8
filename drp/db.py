"""Engine, sessions and migrations: one transaction per command."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    Integer,
    any_,
    bindparam,
    create_engine,
    event,
    false,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.visitors import InternalTraversal
from sqlmodel import Session

from notifications.transports import private_folder

from .errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    # A 64 MiB page cache (the default is 2 MiB): a council's alert and event indexes stay in
    # memory, so runs and pages cost the same at a million alerts as at ten thousand.
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()
    # PostgreSQL's current_setting, which drp reads only for migration 0018's flag of a
    # transaction that changed the organisation (drp.orgtoken): SQLite has no settings (its
    # token moves at once, in the writer's transaction), so every setting is NULL.
    dbapi_conn.create_function("current_setting", 2, _no_setting, deterministic=True)


def _no_setting(_name: object, _missing_ok: object) -> None:
    return None


def private_file(path: Path) -> None:
    """A new SQLite database file, empty (SQLite makes it a database) and for this user alone
    (0600): SQLite gives its -wal and -shm files the database file's mode. A file that exists
    keeps its mode."""
    private_folder(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"DRP_DATABASE_URL {url!r} is not a database URL; e.g. sqlite:///./var/drp.db"
            " or postgresql+psycopg://user@host/db"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            private_file(Path(parsed.database))
        engine = create_engine(parsed, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


@contextmanager
def temporary_schema(url: str, prefix: str = "t_") -> Iterator[str]:
    """A fresh PostgreSQL schema on the server at `url`, dropped afterwards; the URL it yields
    routes every connection to it (for tests and benchmarks that share one server)."""
    name = prefix + uuid.uuid4().hex[:12]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield schema_url(url, name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def schema_url(url: str, name: str) -> str:
    """The server's URL with every connection routed to schema `name`."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{name}"


def reason(exc: OperationalError) -> str:
    """The driver's reason in one line (psycopg adds hints on lines of their own)."""
    lines = str(exc.orig).strip().splitlines()
    return lines[0].strip() if lines else type(exc.orig).__name__


@lru_cache(maxsize=4)
def engine_for(url: str) -> Engine:
    return make_engine(url)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back everything on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def one_at_a_time(session: Session, key: int, table: Any) -> None:
    """Make the session's transaction the only one running among those that call this with
    `key`: the next waits (on SQLite up to its busy timeout) until this one ends, then reads
    what it left. PostgreSQL: a transaction-level advisory lock. SQLite: the database's write
    lock, taken now by a write to `table` that changes nothing, rather than at the
    transaction's first real write after it has read (a read made before another writer
    committed cannot then write: SQLite refuses it as "database is locked")."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(key)))
    else:
        session.execute(update(table).where(false()).values(
            {table.primary_key.columns[0].name: table.primary_key.columns[0]}))


def alembic_config(engine: Engine) -> Config:
    """Alembic, imported here rather than with this module: a command that does not migrate
    need not load it (and Mako and Pygments with it, 0.15 s a process)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema; safe to run twice."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), revision)


def require_schema(engine: Engine) -> None:
    """Refuse to run against an empty database with a message that says what to do."""
    try:
        tables = set(inspect(engine).get_table_names())
    except OperationalError as exc:
        raise ConfigError(
            f"cannot open the database ({reason(exc)}); check DRP_DATABASE_URL"
        ) from None
    if "alert" not in tables:
        raise ConfigError("the database has no drp tables yet; run `drp init` first")


# -- sets of ids ---------------------------------------------------------------------------------
def among(where: Session | Connection, column: Any, ids: Iterable[int]) -> ColumnElement[bool]:
    """`column IN ids`, for a run's chunk of alerts (hundreds to a thousand ids). On PostgreSQL
    `column = ANY(:ids)`: one array parameter, where an IN list is a placeholder an id that
    SQLAlchemy renders and psycopg parses on every execution (a statement that long is past
    psycopg's cache of parsed queries: 7% of a timescale run, bench/README.md)."""
    bind = where if isinstance(where, Connection) else where.get_bind()
    if bind.dialect.name == "postgresql":
        return cast(ColumnElement[bool], column == any_(
            bindparam(None, list(ids), type_=ARRAY(Integer))))
    return cast(ColumnElement[bool], column.in_(list(ids)))


# -- what SQLite's planner is told ------------------------------------------------------------
class _Likelihood(ColumnElement[bool]):
    """A condition, with how likely a row is to meet it. PostgreSQL's planner knows it from its
    statistics; SQLite's has none (no ANALYZE) and guesses that any indexed equality or range
    is selective, so it is told: `likelihood(condition, p)`, which leaves the condition as it
    is (`met_by_few`, `met_by_many`)."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [("condition", InternalTraversal.dp_clauseelement),
                           ("probability", InternalTraversal.dp_plain_obj)]

    def __init__(self, condition: ColumnElement[bool], probability: float) -> None:
        self.condition = condition
        self.probability = probability

    def self_group(self, against: Any = None) -> _Likelihood:
        return self  # a condition already (not a boolean column that SQLite compares to 1)

    @property
    def _from_objects(self) -> list[Any]:  # the tables it names, for the query's FROM
        return list(self.condition._from_objects)


@compiles(_Likelihood)
def _likelihood(element: _Likelihood, compiler: Any, **kw: Any) -> str:
    # (bracketed as within an AND: an OR given keeps its own brackets beside other conditions)
    return str(compiler.process(element.condition.self_group(against=operators.and_), **kw))


@compiles(_Likelihood, "sqlite")
def _likelihood_sqlite(element: _Likelihood, compiler: Any, **kw: Any) -> str:
    return f"likelihood({compiler.process(element.condition, **kw)}, {element.probability})"


def met_by_few(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """A condition few rows meet (a range of the due index): its index is the way in."""
    return _Likelihood(condition, 0.001)


def met_by_many(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """A condition many rows meet over the years (an event's kind): its index is no way in
    where the query names the alerts (their events are read by alert, whatever the number of
    events of that kind the council has)."""
    return _Likelihood(condition, 0.9)
