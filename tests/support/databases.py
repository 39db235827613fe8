"""Test databases made quickly, still real ones.

- SQLite without fsync: every SQLite connection a test opens (in this process) commits without
  waiting for the disk (PRAGMA synchronous=OFF). What a process reads back is the same; only a
  power cut could lose the last commits, which no test makes. PostgreSQL test schemas likewise
  commit without waiting for the WAL flush (synchronous_commit=off, per connection).
- Migrated once: a new SQLite test database is a copy of one made by the migrations (and, for
  the tests that want it, tests/data/org.yaml loaded, every password TEST_PASSWORD), made once
  per process, instead of running alembic for each test (0.5-1.1 s each). The copy is the same
  file the migrations wrote; tests/test_migrations.py runs the migrations themselves.
  On PostgreSQL, where a schema cannot be copied, each test's fresh schema gets the statements
  the migrations (and the organisation's load, and the passwords) sent to the server, recorded
  once per process on a schema of their own and replayed in one transaction (`pg_fill`):
  0.3 s where alembic took 0.5-1.1 s: the same catalogue, row counts and people
  (tests/test_migrations.py compares). A test that fills its schema through the fixtures
  mostly gets one a test before it used, put back as the migrations leave it
  (tests/support/pgpool.py: 0.02 s of the server's CPU instead of 0.13-0.16).
- Cheap test passwords: the test people's hash of TEST_PASSWORD is argon2id at 1 MiB and one
  pass (cheap_password_hash). argon2 verifies with the cost written in the hash, so each sign-in
  of a test person checks in about a millisecond instead of 0.2-0.4 s of CPU and 64 MiB; drp
  hashes and checks are otherwise unchanged, and tests/test_web_routes.py checks that drp's own
  hashes have the production parameters and sign in. An unknown username is checked against
  drp's decoy hash, there only so that it costs what a known one does: in the tests' own
  processes it is made at the tests' cost too (cheap_decoy_hash), since a sign-in spray of
  twenty unknown names cost a test 10-20 s; a server the tests start as a process of its own
  (tests/test_security_load.py) keeps drp's.
- SQL compiled once a process: SQLAlchemy keeps the SQL it compiled per engine, keyed by the
  engine's dialect, and each test makes an engine of its own, so each test compiled every
  statement again (a tenth of the CPU of a typical file's tests). Every SQLite engine the tests'
  processes make (share_sqlite_compiled_sql) uses one dialect, initialised once, and one cache:
  the same SQL text, compiled by the same SQLite dialect, for another file. drp makes one
  engine a process, so this changes nothing drp does; PostgreSQL engines are left as they are
  (the dialect keeps the schema it first connected to, and each test has its own)."""

from __future__ import annotations

import copy
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from drp import db

from . import pgpool

_made: dict[str, Path] = {}
_folder: tempfile.TemporaryDirectory[str] | None = None


def _no_fsync(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, sqlite3.Connection):
        dbapi_conn.execute("PRAGMA synchronous=OFF")


def install_no_fsync() -> None:
    """For every engine this process makes (drp's own included): SQLite without fsync."""
    if not event.contains(Engine, "connect", _no_fsync):
        event.listen(Engine, "connect", _no_fsync)


_shared_sqlite: tuple[Any, Any] | None = None


def share_sqlite_compiled_sql() -> None:
    """Every SQLite engine drp.db.make_engine makes in this process shares one dialect and one
    compiled-SQL cache (the module docstring says why)."""
    make = db.make_engine
    if getattr(make, "shares_compiled_sql", False):
        return

    def make_engine(url: str) -> Engine:
        global _shared_sqlite
        engine = make(url)
        if engine.dialect.name != "sqlite":
            return engine
        if _shared_sqlite is None:
            from sqlalchemy import create_engine
            from sqlalchemy.util import LRUCache

            seed = create_engine("sqlite://")
            with seed.connect():  # the dialect initialised (server version, defaults)
                pass
            _shared_sqlite = (seed.dialect, LRUCache(5000))
            seed.dispose()
        assert type(engine.dialect) is type(_shared_sqlite[0]), engine.dialect
        engine.dialect, engine._compiled_cache = _shared_sqlite
        return engine

    make_engine.shares_compiled_sql = True  # type: ignore[attr-defined]
    db.make_engine = make_engine  # type: ignore[assignment]


def pg_without_flush_wait(url: str) -> str:
    """A temporary schema's URL (drp.db.temporary_schema) whose connections also commit
    without waiting for the WAL flush."""
    marker = "options=-csearch_path%3D"
    assert marker in url, url
    return url.replace(marker, "options=-csynchronous_commit%3Doff%20-csearch_path%3D")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None for other databases."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def unmade(path: Path) -> bool:
    """No database in this SQLite file yet: absent, or the empty file drp.db.make_engine
    makes (0600) before anything connects."""
    return not path.exists() or (path.stat().st_size == 0
                                 and not Path(f"{path}-wal").exists())


# The kinds of test database, each the one before with more in it: "schema" (the migrations
# run), "org" (tests/data/org.yaml loaded), "people" (every password TEST_PASSWORD).
KINDS = ("schema", "org", "people")


def template(kind: str) -> Path:
    """A SQLite file made once per process: "schema" (the migrations run), "org" (and
    tests/data/org.yaml loaded), "people" (and every person's password TEST_PASSWORD)."""
    global _folder
    if kind in _made:
        return _made[kind]
    if _folder is None:
        _folder = tempfile.TemporaryDirectory(prefix="drp-templates-")
    path = Path(_folder.name) / f"{kind}.db"
    if kind != "schema":
        shutil.copyfile(template(KINDS[KINDS.index(kind) - 1]), path)
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        _fill(kind, engine)
    finally:
        engine.dispose()  # the last connection closed: the WAL is folded into the file
    assert not Path(f"{path}-wal").exists(), path
    _made[kind] = path
    return path


def cheap_password_hash(password: str) -> str:
    """argon2id of `password` at a test's cost (1 MiB, one pass, one lane), not drp's."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(password)


def cheap_decoy_hash() -> None:
    """The web app's decoy hash (checked for an unknown username) at the tests' cost."""
    from drp.web import auth

    global PRODUCTION_DECOY
    assert auth._DUMMY_HASH.startswith("$argon2"), "drp.web.auth's decoy hash has moved"
    PRODUCTION_DECOY = PRODUCTION_DECOY or auth._DUMMY_HASH  # drp's own, for its test
    auth._DUMMY_HASH = cheap_password_hash("drp-dummy-password")


PRODUCTION_DECOY = ""  # drp's decoy hash as drp made it, before cheap_decoy_hash


def _fill(kind: str, engine: Engine) -> None:
    from sqlmodel import select

    from drp.ladder.protocol import load_protocol
    from drp.models import Person
    from drp.org import load_org
    from drp.settings import CONFIG_DIR

    from ..conftest import DATA, TEST_PASSWORD

    if kind == "schema":
        db.upgrade(engine)
    elif kind == "org":
        with db.transaction(engine) as s:
            load_org(s, DATA / "org.yaml", load_protocol(CONFIG_DIR / "protocol.yaml"))
    else:
        hashed = cheap_password_hash(TEST_PASSWORD)
        with db.transaction(engine) as s:
            for person in s.exec(select(Person)):
                person.password_hash = hashed
                s.add(person)


_pg_recorded: dict[str, list[tuple[str, Any, bool]]] = {}


def _pg_record(url: str) -> dict[str, list[tuple[str, Any, bool]]]:
    """Each kind's statements, as drp's own code sent them to the driver (once a process)."""
    if _pg_recorded:
        return _pg_recorded
    sent: list[tuple[str, Any, bool]] = []

    # The driver's own calls (a "many" INSERT is often one execute of many VALUES).
    def one(_cursor: Any, statement: str, parameters: Any, _context: Any) -> None:
        sent.append((statement, copy.deepcopy(parameters), False))

    def many(_cursor: Any, statement: str, parameters: Any, _context: Any) -> None:
        sent.append((statement, copy.deepcopy(parameters), True))

    def bare(_cursor: Any, statement: str, _context: Any) -> None:
        sent.append((statement, None, False))

    with db.temporary_schema(url, prefix="tpl_") as schema:
        engine = db.make_engine(schema)
        for name, hook in (("do_execute", one), ("do_executemany", many),
                           ("do_execute_no_params", bare)):
            event.listen(engine.dialect, name, hook)
        try:
            found: dict[str, list[tuple[str, Any, bool]]] = {}
            for kind in KINDS:
                _fill(kind, engine)
                found[kind] = list(sent)
        finally:
            engine.dispose()
    _pg_recorded.update(found)
    return _pg_recorded


def pg_fill(engine: Engine, kind: str = "schema") -> None:
    """An empty PostgreSQL schema (a test's `pg_schema`) made as `template(kind)` is: the
    statements recorded from the migrations (`_pg_record`) replayed through the driver, in
    one transaction."""
    from ..conftest import PG_URL

    assert PG_URL, "pg_fill is for the tests' PostgreSQL schemas (DRP_TEST_POSTGRES_URL)"
    recorded = _pg_record(PG_URL)
    statements = recorded[kind]
    if pgpool.ready(engine.url.render_as_string(hide_password=False)):
        statements = statements[len(recorded["schema"]):]  # the schema is there: the rows
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        for statement, parameters, many in statements:
            if many:
                cursor.executemany(statement, parameters)
            elif parameters is None:
                cursor.execute(statement)
            else:
                cursor.execute(statement, parameters)


@contextmanager
def pg_pooled_schema(base: str) -> Iterator[str]:
    """A PostgreSQL schema for a test that fills it (tests/support/pgpool.py): from this
    process's pool, as the migrations leave it, else a new empty one."""

    def fill(url: str) -> None:
        engine = db.make_engine(url)
        try:
            pg_fill(engine, "schema")
        finally:
            engine.dispose()

    with pgpool.schema(base, fill) as url:
        yield url


def migrate(engine: Engine, kind: str = "schema") -> None:
    """A new test database at the newest schema (and `kind`'s rows, with config/protocol.yaml):
    a replay on PostgreSQL, a copy of `template(kind)` for a SQLite file not made yet, the
    migrations themselves otherwise. Only for an empty database: db.upgrade is for one that
    has a schema already."""
    if engine.dialect.name == "postgresql":
        pg_fill(engine, kind)
        return
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is not None and unmade(path):
        engine.dispose()
        copy_template(kind, path)
        return
    db.upgrade(engine)
    if kind != "schema":
        for then in KINDS[1:KINDS.index(kind) + 1]:
            _fill(then, engine)


def copy_template(kind: str, to: Path) -> None:
    """`to` becomes a copy of the template (it must not be open yet)."""
    to.parent.mkdir(parents=True, exist_ok=True)
    for stale in (Path(f"{to}-wal"), Path(f"{to}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(template(kind), to)
