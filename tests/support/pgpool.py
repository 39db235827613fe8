"""PostgreSQL test schemas used again, each put back as the migrations leave it.

A fresh schema for each PostgreSQL test cost the server about 0.16 s of CPU (CREATE SCHEMA, the
migrations' 40-odd tables, indexes and triggers replayed, then DROP SCHEMA CASCADE), about 40 s
of a `make test`. A test that takes its database from the `engine`, `org` or `web_on` fixture
always has it filled (tests/support/databases.pg_fill), so its schema can instead come from
this process's pool: when the test is over, the schema goes back to the pool only if its
catalogue (tables, columns, indexes, constraints, triggers, functions) is still the one the
migrations make, and then with every table's rows put back as the migrations leave them (rows
deleted, the template's rows copied in, with triggers off, as a replica would; sequences set to
the template's), in one transaction. Anything else (a test that migrated down, a lock held) and
the schema is dropped, as before. A test that asks for a bare schema (`pg_schema`) still gets
a new empty one.

The catalogue itself: this machine's server runs without autovacuum, so every schema made and
dropped leaves its rows dead in pg_class, pg_attribute and the rest (after a few suites,
pg_attribute was 228 MB for 1,572 live rows, and each query of the catalogue read all of it:
0.12 s). `compact_catalogue` rewrites those tables of the tests' database once at the start of
a run (VACUUM FULL, about a second)."""

from __future__ import annotations

import atexit
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

# Every relation, column, constraint, trigger and function of a schema, by name (so two schemas
# compare): one md5.
CATALOGUE = text("""
    WITH n AS (SELECT oid FROM pg_namespace WHERE nspname = :schema)
    SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM (
        SELECT 'r:' || c.relname || ':' || c.relkind::text FROM pg_class c, n
            WHERE c.relnamespace = n.oid
        UNION ALL SELECT 'a:' || c.relname || '.' || a.attname || ':' || a.atttypid::text
                || ':' || a.attnotnull::text
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid, n
            WHERE c.relnamespace = n.oid AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL SELECT 'k:' || k.conname || ':' || k.contype::text || ':' || c.relname
                || ':' || coalesce(f.relname, '') || ':' || k.conkey::text || ':'
                || coalesce(k.confkey::text, '')
            FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                LEFT JOIN pg_class f ON f.oid = k.confrelid, n
            WHERE k.connamespace = n.oid
        UNION ALL SELECT 't:' || c.relname || '.' || t.tgname || ':' || t.tgenabled::text
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, n
            WHERE c.relnamespace = n.oid AND NOT t.tgisinternal
        UNION ALL SELECT 'f:' || p.proname || ':' || md5(p.prosrc) FROM pg_proc p, n
            WHERE p.pronamespace = n.oid
    ) AS everything(x)""")


@dataclass
class Template:
    """A schema as the migrations leave it, kept for this process: what a used one is put
    back to."""

    name: str
    catalogue: str
    tables: list[str]  # every table, each with the template's rows copied back
    sequences: list[tuple[str, int, bool]]  # (name, last_value, is_called)


_admin: Engine | None = None
_template: Template | None = None
_free: list[str] = []  # schemas put back, ready for the next test
_ready: set[str] = set()  # schemas handed out as the migrations leave them (pg_fill adds only the rest)


def schema_of(url: str) -> str | None:
    """The schema a test URL routes its connections to (drp.db.temporary_schema's)."""
    found = re.search(r"search_path(?:%3D|=)(\w+)", url)
    return found.group(1) if found else None


def _engine(base: str) -> Engine:
    global _admin
    if _admin is None:
        _admin = create_engine(base, isolation_level="AUTOCOMMIT")
        atexit.register(_drop_all)
    return _admin


def _create(base: str, prefix: str) -> str:
    name = prefix + uuid.uuid4().hex[:12]
    with _engine(base).connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    return name


def _drop(name: str) -> None:
    if _admin is not None:
        with _admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def _drop_all() -> None:
    """At this process's end: the pool and the template."""
    try:
        for name in [*_free, *([_template.name] if _template else [])]:
            _drop(name)
    finally:
        if _admin is not None:
            _admin.dispose()


# The catalogue tables that making and dropping schemas of tables, indexes, sequences,
# constraints, triggers and functions fills with dead rows.
CATALOGUE_TABLES = ("pg_class", "pg_attribute", "pg_attrdef", "pg_constraint", "pg_trigger",
                    "pg_type", "pg_index", "pg_depend", "pg_proc", "pg_namespace",
                    "pg_sequence", "pg_statistic", "pg_description")


def compact_catalogue(base: str) -> str | None:
    """VACUUM FULL of the catalogue tables of the tests' database (at the start of a run,
    before any test connects): None, or why it could not be done (the run goes on)."""
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '10s'"))
            conn.execute(text("VACUUM FULL " + ", ".join(
                f"pg_catalog.{t}" for t in CATALOGUE_TABLES)))
        return None
    except Exception as exc:  # a slower run, not a failed one
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()


def url_for(base: str, name: str) -> str:
    from drp import db

    from . import databases

    return databases.pg_without_flush_wait(db.schema_url(base, name))


def template(base: str, fill: Any) -> Template:
    """The template schema, made once a process by `fill(url)` (the migrations' replay)."""
    global _template
    if _template is None:
        name = _create(base, "tpl_pool_")
        fill(url_for(base, name))
        with _engine(base).connect() as conn:
            conn.execute(text("SET jit = off"))
            catalogue = conn.execute(CATALOGUE, {"schema": name}).scalar_one()
            tables = list(conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"),
                {"s": name}).scalars())
            sequences = [(seq, int(value or 1), value is not None) for seq, value in conn.execute(
                text("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = :s"
                     " ORDER BY sequencename"), {"s": name})]
        _template = Template(name, catalogue, tables, sequences)
    return _template


def ready(url: str) -> bool:
    """Whether this URL's schema was handed out as the migrations leave it (once: it is the
    test's from then on)."""
    name = schema_of(url)
    if name in _ready:
        _ready.discard(name)
        return True
    return False


def _put_back(name: str, tpl: Template) -> bool:
    """The schema's rows as the template's, if its catalogue is the template's: whether it
    may be used again."""
    assert _admin is not None
    try:
        with _admin.connect() as autocommit:
            conn = autocommit.execution_options(isolation_level="READ COMMITTED")
            conn.begin()
            # (the catalogue's statistics can be far off after many tests' schemas came and
            # went: without this, PostgreSQL compiled the query to machine code each time)
            conn.execute(text("SET LOCAL lock_timeout = '2s'; SET LOCAL jit = off"))
            if conn.execute(CATALOGUE, {"schema": name}).scalar_one() != tpl.catalogue:
                return False
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            statements = [f'DELETE FROM "{name}"."{t}"' for t in tpl.tables]
            statements += [f'INSERT INTO "{name}"."{t}" SELECT * FROM "{tpl.name}"."{t}"'
                           for t in tpl.tables]
            statements += [f"SELECT setval('\"{name}\".\"{s}\"', {v}, {str(called).lower()})"
                           for s, v, called in tpl.sequences]
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.execute(";\n".join(statements))  # one round trip (no parameters)
            conn.commit()
        return True
    except Exception:  # any failure: the schema is dropped, as before the pool
        return False


@contextmanager
def schema(base: str, fill: Any) -> Iterator[str]:
    """A test's schema: from the pool (as the migrations leave it), else a new empty one; put
    back (or dropped) when the test is over."""
    tpl = template(base, fill)
    if _free:
        name = _free.pop()
        _ready.add(name)
    else:
        name = _create(base, "t_")
    try:
        yield url_for(base, name)
    finally:
        _ready.discard(name)
        if _put_back(name, tpl):
            _free.append(name)
        else:
            _drop(name)
