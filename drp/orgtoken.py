"""The organisation's token (migration 0018) and what a process keeps under it.

Every write to what the token guards (`WATCHED`: the people, their roles and teams, cover
periods, the teams', services' and council's posts) gives the one row of `org_version` a new
random token, by triggers in the database: at once on SQLite (one writer at a time), at the
writer's commit on PostgreSQL, where the write also marks its own transaction (the setting
`drp.org_changed`). So a process may keep what it read of the organisation under the token it
read with it (`kept`: people acting, people by id, the IRO managers, today's cover periods)
and use it while the token stands.

A transaction holds the token it read (`hold`, on its connection) until it ends or runs a
statement that may write what the token guards (`_may_write`, watching every statement): while
it holds one, what was kept under that token needs no statement at all (`held`). A statement
that reads the token with its own rows (`TOKEN`'s columns, e.g. an alert with its line) holds
it for the reads after it (issue 19: a command's statements)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, event
from sqlalchemy.pool import Pool
from sqlmodel import Session

from .dataversion import DataVersion
from .models import ORGANISATION, OrgVersion, people_rows, write_people_changes

WATCHED = frozenset(cast(Any, model).__tablename__ for model in ORGANISATION)
MOST = 4096  # kept entries of each kind an engine; emptied when full

_ORG: Any = OrgVersion.__table__  # type: ignore[attr-defined]
# The token, and whether this transaction changed what it guards (PostgreSQL's setting; NULL
# on SQLite, whose stand-in `current_setting` (drp.db) knows no settings: its token moves at
# once). A statement joins `TOKEN` (one row) to read them with its own rows.
_CHANGED = sa.func.current_setting("drp.org_changed", True) == "on"
TOKEN = (sa.select(_ORG.c.token.label("org_token"), _CHANGED.label("org_changed"))
         .where(_ORG.c.id == 1).subquery("org"))
_READ = sa.select(_ORG.c.token, _CHANGED).where(_ORG.c.id == 1)
_DATA: Any = DataVersion.__table__  # type: ignore[attr-defined]
# The organisation's and the data's (drp.dataversion) tokens as they stand, two columns a
# statement reads with its own: the session's check (drp.web.auth), under which a process
# answers the pages it kept (drp.web.pagecache).
BOTH = (sa.select(_ORG.c.token).where(_ORG.c.id == 1).scalar_subquery(),
        sa.select(_DATA.c.token).where(_DATA.c.id == 1).scalar_subquery())
_HELD = "drp.org_token"
T = TypeVar("T")


@dataclass
class Kept:
    """What an engine's sessions read of the organisation, each under its token."""

    actors: dict[Any, Any] = field(default_factory=dict)  # (username, day) -> actors._Known
    people: dict[int, tuple[int, Any]] = field(default_factory=dict)  # id -> (token, Person)
    managers: tuple[int, list[int]] | None = None  # (token, the active IRO managers' ids)
    other: dict[Any, tuple[int, Any]] = field(default_factory=dict)  # `kept_or_read`

    def keep(self, into: dict[Any, Any], key: Any, value: Any) -> None:
        if len(into) >= MOST:
            into.clear()
        into[key] = value


_KEPT: weakref.WeakKeyDictionary[Engine, Kept] = weakref.WeakKeyDictionary()


def kept(session: Session) -> Kept:
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    found = _KEPT.get(engine)
    if found is None:
        found = _KEPT[engine] = Kept()
    return found


def hold(session: Session, token: int | None, changed: bool | None) -> int | None:
    """This transaction read `token` (and whether it changed the organisation itself): held
    for its next reads, unless it changed it (its reading is not, or not yet, anyone else's)
    or there is none (a schema older than 0018). Returns the token to keep things under, or
    None: keep nothing."""
    info = session.connection().info
    if token is None or changed:
        info.pop(_HELD, None)
        return None
    info[_HELD] = token
    return token


def held(session: Session) -> int | None:
    """The token this transaction holds (`hold`), or None. The session's own changes to the
    organisation not yet written are written first (and so let it go): what was kept is not
    what this session is about to make it."""
    write_people_changes(session)
    token: int | None = session.connection().info.get(_HELD)
    return token


def current(session: Session) -> int | None:
    """The token as this transaction sees it, held from here: none held, one statement."""
    token = held(session)
    if token is None:
        row = people_rows(session, _READ, {}).one_or_none()
        token = hold(session, *row) if row is not None else None
    return token


def kept_or_read(session: Session, key: Any, read: Callable[[], T]) -> T:
    """What `read()` returns, kept under the token this transaction holds (by `key`): while
    it holds one, read once a process. `read` reads only what the token guards; the value is
    shared, so never changed."""
    token = held(session)
    if token is None:
        return read()
    store = kept(session)
    entry = store.other.get(key)
    if entry is not None and entry[0] == token:
        return entry[1]  # type: ignore[no-any-return]
    value = read()
    if held(session) == token:  # (a read that wrote this session's changes first let it go)
        store.keep(store.other, key, (token, value))
    return value


def _may_write(statement: str, context: Any) -> bool:
    """Might this statement write what the token guards? Reads do not; nor does an INSERT,
    UPDATE or DELETE compiled for a table it does not guard; anything else might."""
    compiled = getattr(context, "compiled", None)
    if context is not None and (context.isinsert or context.isupdate or context.isdelete):
        table = getattr(getattr(compiled, "statement", None), "table", None)
        name = getattr(table, "name", None)
        return name is None or name in WATCHED
    return statement.lstrip()[:6].upper() != "SELECT"


@event.listens_for(Engine, "before_cursor_execute")
def _watch(conn: Connection, _cursor: Any, statement: str, _parameters: Any, context: Any,
           _many: bool) -> None:
    if _HELD in conn.info and _may_write(statement, context):
        conn.info.pop(_HELD, None)


def _let_go(conn: Connection, *_: Any) -> None:
    if not conn.invalidated:  # (an invalidated connection's info went with it: the pool's)
        conn.info.pop(_HELD, None)


for _name in ("commit", "rollback", "rollback_savepoint", "rollback_twophase"):
    event.listen(Engine, _name, _let_go)


@event.listens_for(Pool, "reset")
def _reset(_dbapi: Any, record: Any, _state: Any) -> None:
    record.info.pop(_HELD, None)
