"""Who is acting: a person with their roles, the teams whose children they may see and the
people they cover for today, read from the database (`load_actor`; `actor_named`, one
statement for the person too). What an actor may then see and do is the access policy's
(access.py, which re-exports these names)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import and_, or_, true
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from .. import orgtoken
from ..models import (
    Cover,
    Person,
    PersonRole,
    Service,
    Team,
    TeamMember,
    people_rows,
    person_as_read,
)
from .protocol import Role

SYSTEM = "system"
SEE_ALL = frozenset({Role.iro_manager, Role.assistant_director, Role.director})


@dataclass(frozen=True)
class Actor:
    """A person acting, with the scope their roles and posts give them."""

    id: int | None
    username: str
    name: str
    roles: frozenset[str]
    team_ids: frozenset[int] = frozenset()  # teams whose children they may see
    # The people whose work this person has today as their recorded cover: id -> username.
    covering: Mapping[int, str] = field(default_factory=dict)
    # Roles held only through cover (in `roles` too): an IRO manager's deputy sees all and
    # withdraws as cover for them; the director's deputy sees what the director sees.
    borrowed: Mapping[str, str] = field(default_factory=dict)  # role -> whose it is

    @property
    def is_system(self) -> bool:
        return self.username == SYSTEM

    @property
    def sees_all(self) -> bool:
        return self.is_system or bool(self.roles & SEE_ALL)

    @property
    def is_iro_manager(self) -> bool:
        return Role.iro_manager in self.roles


SYSTEM_ACTOR = Actor(id=None, username=SYSTEM, name="drp (automatic)", roles=frozenset())


# Statements built once per process (each call only binds its values).
_TODAY: Any = sa.bindparam("today")  # the cover periods running on :today (`deputies_on`):
COVER_TODAY = and_(col(Cover.starts) <= _TODAY, col(Cover.ends) >= _TODAY,
                   col(Cover.ended_at).is_(None))
_DEPUTIES = select(Cover.person_id, Cover.deputy_id).where(COVER_TODAY).order_by(col(Cover.id))


def deputies_on(session: Session, today: date) -> dict[int, int]:
    """Who covers whom today: absent person's id -> deputy's id (cover periods include both
    their days; an ended period no longer counts)."""
    return {person: deputy for person, deputy in session.execute(_DEPUTIES, {"today": today})}


# What an actor is, in one statement of (kind, id, other, text, seq) rows beside their person
# row: ROLE their roles; BORROWED (whose, role) and COVERED (id, username) of whom they cover;
# TEAM the teams whose children they (or whom they cover) may see: a team's manager, member,
# its service's head or manager; DEPUTY (absent, deputy; seq the period's id) today's cover
# periods, everyone's (`deputies_on`'s). Given by `pid` and `absent` (whom they cover), or
# found from `username` (`actor_named`).
ROLE, BORROWED, COVERED, TEAM, DEPUTY = 0, 1, 2, 3, 4
_NO_ID, _NO_TEXT = sa.cast(sa.null(), sa.Integer), sa.cast(sa.null(), sa.String)
_KIND = [sa.literal_column(str(k), sa.Integer) for k in range(5)]


def _row(kind: int, some_id: Any = _NO_ID, other: Any = _NO_ID, text: Any = _NO_TEXT,
         seq: Any = _NO_ID) -> Any:
    return sa.select(_KIND[kind].label("kind"), some_id.label("some_id"), other.label("other"),
                     text.label("text"), seq.label("seq"))


def _actor_rows(pid: Any, absent: Any) -> list[Any]:
    """The SELECTs of (kind, id, other, text, seq) rows, for a UNION ALL; `pid` one person's
    id, `absent` the ids of those they cover (a list or a subquery)."""
    def theirs(column: Any) -> Any:
        return or_(column == pid, column.in_(absent))

    return [
        _row(ROLE, text=col(PersonRole.role)).where(col(PersonRole.person_id) == pid),
        _row(BORROWED, col(PersonRole.person_id), text=col(PersonRole.role))
        .where(col(PersonRole.person_id).in_(absent)),
        _row(COVERED, col(Person.id), text=col(Person.username)).where(col(Person.id).in_(absent)),
        _row(TEAM, col(Team.id)).where(theirs(col(Team.team_manager_id))),
        _row(TEAM, col(TeamMember.team_id)).where(theirs(col(TeamMember.person_id))),
        _row(TEAM, col(Team.id)).where(col(Team.service_id).in_(
            select(col(Service.id)).where(or_(theirs(col(Service.head_of_service_id)),
                                              theirs(col(Service.service_manager_id)))))),
    ]


_ACTOR: Any = sa.union_all(*_actor_rows(sa.bindparam("pid"),
                                        sa.bindparam("absent", expanding=True)))
_NAMED: Any = sa.bindparam("username")
_NAMED_ID = select(col(Person.id)).where(col(Person.username) == _NAMED).scalar_subquery()
_LATER = aliased(Cover)
# Whom they cover today: as `deputies_on` reads it, a later period for the same absent person
# (overlaps are refused when cover is recorded) being the one that counts.
_NAMED_ABSENT = select(col(Cover.person_id)).where(
    COVER_TODAY, col(Cover.deputy_id) == _NAMED_ID,
    ~sa.exists().where(col(_LATER.person_id) == Cover.person_id, col(_LATER.id) > Cover.id,
                       col(_LATER.starts) <= _TODAY, col(_LATER.ends) >= _TODAY,
                       col(_LATER.ended_at).is_(None)))
_ACTOR_ROWS = sa.union_all(
    *_actor_rows(_NAMED_ID, _NAMED_ABSENT),
    _row(DEPUTY, col(Cover.person_id), col(Cover.deputy_id), seq=col(Cover.id)).where(COVER_TODAY),
).subquery()
# The person named, and what they are today, in one statement (no row: no such person).
_PERSON: Any = Person.__table__  # type: ignore[attr-defined]
# With the organisation's token (drp.orgtoken), read in the same statement.
_ACTOR_NAMED: Any = (
    sa.select(*_PERSON.c, *_ACTOR_ROWS.c, orgtoken.TOKEN.c.org_token, orgtoken.TOKEN.c.org_changed)
    .select_from(_PERSON.outerjoin(_ACTOR_ROWS, true()).outerjoin(orgtoken.TOKEN, true()))
    .where(_PERSON.c.username == _NAMED).order_by(_ACTOR_ROWS.c.seq))
_WIDTH = len(_PERSON.c)


def _fold(person: Person, rows: Any) -> Actor:
    """An Actor from `_actor_rows`' rows (DEPUTY rows are not the actor's)."""
    roles, teams, named, theirs = set[str](), set[int](), dict[int, str](), list[tuple[int, str]]()
    for kind, some_id, _other, text, *_ in rows:
        if kind == ROLE:
            roles.add(text)
        elif kind == BORROWED:
            theirs.append((some_id, text))
        elif kind == COVERED:
            named[some_id] = text
        elif kind == TEAM and some_id is not None:
            teams.add(some_id)
    covering = {p: named[p] for p in sorted(named)}
    borrowed: dict[str, str] = {}
    for whose, role in sorted(theirs, key=lambda row: row[0]):
        if whose in covering and role not in roles and role != Role.admin:
            borrowed.setdefault(role, covering[whose])
    return Actor(
        id=person.id, username=person.username, name=person.name,
        roles=frozenset(roles | set(borrowed)), team_ids=frozenset(teams),
        covering=MappingProxyType(covering), borrowed=MappingProxyType(borrowed),  # (shared)
    )


def load_actor(session: Session, person: Person, today: date | None = None, *,
               deputies: Mapping[int, int] | None = None) -> Actor:
    """The person with their roles, the teams they may see, and (given `today`) the people
    they cover for, whose teams' children they may then see too. `deputies`: today's cover
    periods (`deputies_on`) when the caller has read them already."""
    assert person.id is not None
    pid = person.id
    absent: list[int] = []
    if today is not None:
        if deputies is None:
            deputies = deputies_on(session, today)
        absent = sorted(p for p, d in deputies.items() if d == pid)
    return _fold(person, session.execute(_ACTOR, {"pid": pid, "absent": absent}))


@dataclass(frozen=True)
class _Known:
    """A person acting as read under the organisation's token (`actor_named`)."""

    token: int
    person: Person
    actor: Actor
    deputies: Mapping[int, int]


def actor_named(session: Session, username: str, today: date
                ) -> tuple[Person, Actor, dict[int, int]] | None:
    """The person called `username` (None when there is none), what they are today (as
    `load_actor`), and today's cover periods (as `deputies_on`). One statement; none when this
    process read them already under the organisation's token as this transaction holds it
    (drp.orgtoken: a person, role, team, cover period or post changed since changes it), or
    only the token's when it holds none. The person is a read-only copy (`person_as_read`),
    shared."""
    kept = orgtoken.kept(session)
    seen = kept.actors.get((username, today))
    if seen is not None and orgtoken.current(session) == seen.token:
        return seen.person, seen.actor, dict(seen.deputies)
    rows = people_rows(session, _ACTOR_NAMED, {"username": username, "today": today}).all()
    if not rows:
        return None
    person = person_as_read(rows[0])  # read only, as the directory keeps people
    found = [row[_WIDTH:-2] for row in rows]
    deputies = {row[1]: row[2] for row in found if row[0] == DEPUTY}  # by the period's id
    actor = _fold(person, found)
    token = orgtoken.hold(session, *rows[0][-2:])
    if token is not None:
        kept.keep(kept.actors, (username, today), _Known(token, person, actor, dict(deputies)))
    return person, actor, deputies
