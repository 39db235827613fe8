"""Where the service layer and the notifier look people up: the unit of work's directory
(each person read once, by id or username, several in one query; the IRO managers with an
event's people) and a run's snapshot of everyone."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, literal, or_, union_all
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from . import orgtoken
from .ladder import access
from .ladder.protocol import Role
from .models import Council, Person, PersonRole, people_rows, person_as_read

# Statements built once per process: people's columns, read as rows (`person_as_read`).
_PERSON: Any = Person.__table__  # type: ignore[attr-defined]
_IDS: Any = bindparam("ids", expanding=True)
_PEOPLE = sa_select(_PERSON).where(_PERSON.c.id.in_(_IDS))
_PEOPLE_OR_NAMED = sa_select(_PERSON).where(or_(
    _PERSON.c.id.in_(_IDS), _PERSON.c.username.in_(bindparam("usernames", expanding=True))))
# The IRO managers: active people with the role (over Person joined to PersonRole; the digest's
# readers too).
AN_IRO_MANAGER = (col(PersonRole.role) == Role.iro_manager, col(Person.active))
_IRO_MANAGERS = (sa_select(_PERSON).join(PersonRole, col(PersonRole.person_id) == _PERSON.c.id)
                 .where(*AN_IRO_MANAGER).order_by(_PERSON.c.id))
# The people among :ids, then the IRO managers (flagged), in one statement: an event's people
# when its e-mail may copy the managers (`reads_iro_managers`).
_WHO = union_all(
    sa_select(_PERSON, literal(False).label("iro_manager")).where(_PERSON.c.id.in_(_IDS)),
    sa_select(_PERSON, literal(True).label("iro_manager"))
    .join(PersonRole, col(PersonRole.person_id) == _PERSON.c.id)
    .where(*AN_IRO_MANAGER)).subquery()
_PEOPLE_AND_MANAGERS = sa_select(_WHO).order_by(_WHO.c.iro_manager, _WHO.c.id)


class Directory:
    """Where the notifier looks people up: the unit of work's session, each person read once
    (`load` reads several in one query) and kept for the unit of work (`people`, shared with
    the unit when it gives its own)."""

    def __init__(self, session: Session, people: dict[int, Person] | None = None) -> None:
        self.s = session
        self.people: dict[int, Person] = {} if people is None else people
        self._managers: list[int | None] | None = None  # the IRO managers, once read

    def load(self, ids: Iterable[int | None], *, managers: bool = False,
             usernames: Iterable[str | None] = ()) -> None:
        """Read the people among `ids` not read yet, in one query; `managers`: and the active
        IRO managers (`iro_managers`) unless read already, in the same query; `usernames`:
        and those people, by username (in the same query, without `managers`). People (and
        the managers) this process read under the organisation's token as this transaction
        holds it (drp.orgtoken) are taken from what it kept, without a query."""
        missing = {i for i in ids if i is not None and i not in self.people}
        token = orgtoken.held(self.s)
        kept = orgtoken.kept(self.s) if token is not None else None
        if kept is not None:
            self._from_kept(kept, token, missing, managers)
        if managers and self._managers is None:
            found = self._read(_PEOPLE_AND_MANAGERS, {"ids": sorted(missing)})
            self.people.update((_known(p.id), p) for p, _ in found)
            self._managers = [p.id for p, is_manager in found if is_manager]
            self._keep(kept, token, [p for p, _ in found], managers=self._managers)
            missing = set()
        known = {p.username for p in self.people.values()}
        named = {u for u in usernames if u and u != access.SYSTEM and u not in known}
        if named:
            found = self._read(_PEOPLE_OR_NAMED, {"ids": sorted(missing),
                                                  "usernames": sorted(named)})
        elif missing:
            found = self._read(_PEOPLE, {"ids": sorted(missing)})
        else:
            return
        for p, _ in found:
            self.people[_known(p.id)] = p
        self._keep(kept, token, [p for p, _ in found])

    def _from_kept(self, kept: orgtoken.Kept, token: int | None, missing: set[int],
                   managers: bool) -> None:
        """Take what `kept` has under `token` of the people `missing` (taken out of it) and,
        with `managers`, of the IRO managers (all of them, or none)."""
        for person_id in sorted(missing):
            entry = kept.people.get(person_id)
            if entry is not None and entry[0] == token:
                self.people[person_id] = entry[1]
                missing.discard(person_id)
        if managers and self._managers is None and kept.managers is not None:
            kept_token, ids = kept.managers
            entries = [kept.people.get(i) for i in ids]
            if kept_token == token and all(e is not None and e[0] == token for e in entries):
                self.people.update((i, e[1]) for i, e in zip(ids, entries, strict=True) if e)
                self._managers = list(ids)

    def _keep(self, kept: orgtoken.Kept | None, token: int | None, people: list[Person], *,
              managers: list[int | None] | None = None) -> None:
        """Keep the people read (and the managers) under `token`, if this transaction still
        holds it (a read that first wrote this session's changes to people let it go)."""
        if kept is None or token is None or orgtoken.held(self.s) != token:
            return
        for p in people:
            kept.keep(kept.people, _known(p.id), (token, p))
        if managers is not None:
            kept.managers = (token, [_known(i) for i in managers])

    def _read(self, statement: Any, values: dict[str, Any]) -> list[tuple[Person, Any]]:
        """People (with the row's last column), read as rows (`people_rows`)."""
        rows = people_rows(self.s, statement, values)
        return [(person_as_read(row), row[-1]) for row in rows]

    def person(self, person_id: int) -> Person | None:
        if person_id not in self.people:
            self.load([person_id])
        return self.people.get(person_id)

    def council(self) -> Council | None:
        return self.s.get(Council, 1)

    def iro_managers(self) -> list[int | None]:
        """The active IRO managers' ids (the people read and kept, for their addresses): read
        once, with an event's people (`load`) or alone."""
        if self._managers is None:
            found = [p for p, _ in self._read(_IRO_MANAGERS, {})]
            self.people.update((_known(p.id), p) for p in found)
            self._managers = [p.id for p in found]
        return list(self._managers)

    def forget_managers(self) -> None:
        """Read the IRO managers again when next asked (the organisation's roles changed)."""
        self._managers = None


class Snapshot(Directory):
    """Everyone, read once: for a run that writes to many alerts (the organisation changes
    only through `drp org load`, and a run is a few seconds long)."""

    def __init__(self, session: Session) -> None:
        super().__init__(session, {_known(p.id): p for p in session.exec(select(Person))})
        self._council = session.get(Council, 1)
        self.iro_managers()

    def load(self, ids: Iterable[int | None], *, managers: bool = False,
             usernames: Iterable[str | None] = ()) -> None:
        """Everyone is read already."""

    def person(self, person_id: int) -> Person | None:
        return self.people.get(person_id)

    def council(self) -> Council | None:
        return self._council


def _known(value: int | None) -> int:
    assert value is not None
    return value
