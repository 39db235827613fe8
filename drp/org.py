"""Load (and re-load, to update) an organisation file: all or nothing.

People, services, teams and children not in a re-loaded file are marked inactive, never
deleted: the event log still names them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)
from sqlmodel import Session, col, delete, select

from .clock import within_range
from .configfile import LoadedYaml, load_yaml
from .errors import BadValue
from .ladder.access import IRO_SIDE, SYSTEM, may_deputise
from .ladder.protocol import Protocol, Role
from .models import Child, Council, Cover, Person, PersonRole, Service, Team, TeamMember
from .orgfields import BirthDate, ChildRef, Email, Key, Name, Reason, RecordId, Username

FILE = "organisation file"  # who set a cover period the file holds (Cover.created_by)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonIn(_In):
    username: Username
    name: Name
    email: Email | None = None
    roles: list[Role] = Field(min_length=1)
    team: Key | None = None  # a social worker's team (optional)


class ServiceIn(_In):
    key: Key
    name: Name
    head_of_service: Username | None = None
    service_manager: Username | None = None


class TeamIn(_In):
    key: Key
    name: Name
    service: Key
    team_manager: Username | None = None


class SeniorIn(_In):
    assistant_director: Username | None = None
    director: Username | None = None


class ChildIn(_In):
    ref: ChildRef
    record_id: RecordId | None = None  # in the council's case-management system
    team: Key
    iro: Username
    social_worker: Username | None = None
    dob: BirthDate | None = None  # the date of birth: alert records are kept to a birthday


class CoverIn(_In):
    """A cover period: while it runs (both days included), `deputy` receives `person`'s
    work and acts as cover for them (`drp cover set` records the same by command)."""

    person: Username
    deputy: Username
    starts: date = Field(alias="from")
    ends: date = Field(alias="to")
    reason: Reason | None = Field(default=None, max_length=500)


class OrgFile(_In):
    council: Name
    people: list[PersonIn] = Field(min_length=1)
    services: list[ServiceIn] = Field(default_factory=list)
    teams: list[TeamIn] = Field(default_factory=list)
    senior: SeniorIn = SeniorIn()
    children: list[ChildIn] = Field(default_factory=list)
    cover: list[CoverIn] = Field(default_factory=list)


@dataclass
class LoadResult:
    council: str
    people: int
    services: int
    teams: int
    children: int
    deactivated: int
    covers: int = 0  # cover periods the file holds
    cover_set: list[Cover] = field(default_factory=list)  # new since the last load
    cover_removed: list[Cover] = field(default_factory=list)  # no longer in the file
    # Teams with children and no team manager, each saying who their stage falls to.
    vacancies: list[str] = field(default_factory=list)


# -- cover periods: what makes one valid (the file and `drp cover set` both ask here) --------
def cover_problem(person: str, deputy: str, starts: date, ends: date) -> BadValue | None:
    """What is wrong with a cover period on its face (None when nothing); `field` names the
    input as the service layer calls it."""
    if person == deputy:
        return BadValue(f"{person} cannot cover for themselves; name someone else as the"
                        " deputy", field="deputy")
    for value, what, name in ((starts, "the cover's first day", "starts"),
                              (ends, "the cover's last day", "ends")):
        try:
            within_range(value, what, field=name)
        except BadValue as exc:
            return exc
    if ends < starts:
        return BadValue(f"the cover's last day {ends.isoformat()} is before its first day"
                        f" {starts.isoformat()}; give a last day on or after the first",
                        field="ends")
    return None


def deputy_problem(person: str, deputy: str, person_roles: frozenset[str],
                   deputy_roles: frozenset[str]) -> BadValue | None:
    """A deputy on the wrong side (`access.may_deputise`): an IRO's work to someone on the
    management line, or a manager's to someone only on the IRO's side."""
    if may_deputise(person_roles, deputy_roles):
        return None
    if person_roles & IRO_SIDE:
        return BadValue(f"{person}'s work as an IRO may go only to another IRO or an IRO"
                        f" manager, and {deputy} is neither (IROs are independent of the"
                        " child's management line); choose one", field="deputy")
    return BadValue(f"{person}'s work on the management line may not go to {deputy}, who"
                    " works only on the IRO's side (IROs are independent of the line);"
                    " choose someone on the line", field="deputy")


def overlapping_cover(session: Session, person_id: int, starts: date, ends: date, *,
                      as_deputy: bool = False) -> Cover | None:
    """A cover period of the same person (or, `as_deputy`, one where they are the deputy),
    not ended, sharing a day with starts..ends."""
    who = Cover.deputy_id if as_deputy else Cover.person_id
    return session.exec(select(Cover).where(
        who == person_id, col(Cover.ended_at).is_(None),
        col(Cover.starts) <= ends, col(Cover.ends) >= starts).order_by(col(Cover.id))).first()


def cover_conflict(session: Session, person: Person, deputy: Person, starts: date,
                   ends: date) -> BadValue | None:
    """What a new cover period would clash with among those recorded (not ended): the
    person's own cover on those days, the deputy away themselves, or the person covering
    for someone else then (cover does not chain: that work would reach nobody)."""
    def name(pid: int) -> str:
        row = session.get(Person, pid)
        return row.username if row else "?"

    pid, did = person.id or 0, deputy.id or 0
    other = overlapping_cover(session, pid, starts, ends)
    if other is not None:
        how = "the organisation file" if other.source == "file" else "drp cover set"
        return BadValue(
            f"{person.username} already has cover from {other.starts.isoformat()} to"
            f" {other.ends.isoformat()} by {name(other.deputy_id)} (set by {how}); change the"
            f" dates, or end it first (drp cover end {person.username})", field="starts")
    away = overlapping_cover(session, did, starts, ends)
    if away is not None:
        return BadValue(
            f"{deputy.username} is away themselves from {away.starts.isoformat()} to"
            f" {away.ends.isoformat()} (covered by {name(away.deputy_id)}); choose another"
            " deputy", field="deputy")
    covering = overlapping_cover(session, pid, starts, ends, as_deputy=True)
    if covering is not None:
        return BadValue(
            f"{person.username} covers for {name(covering.person_id)} from"
            f" {covering.starts.isoformat()} to {covering.ends.isoformat()}, whose work would"
            f" then reach nobody; end that cover first (drp cover end"
            f" {name(covering.person_id)}) or change the dates", field="starts")
    return None


def vacancy_cover(team: Team, service: Service, names: dict[int, str]) -> str:
    """In words: who a vacant team manager's stage falls to (as `Line.build` fills it)."""
    for pid, post in ((service.service_manager_id, "service manager"),
                      (service.head_of_service_id, "head of service")):
        if pid is not None:
            return (f"team {team.key} has no team manager: its stage falls to"
                    f" {names.get(pid, '?')} ({post})")
    return f"team {team.key} has no team manager and nobody above to take its stage"


def _check(doc: LoadedYaml, org: OrgFile, protocol: Protocol) -> None:
    """Cross-references, each refusal naming its line."""
    people: dict[str, PersonIn] = {}
    for i, p in enumerate(org.people):
        if p.username == SYSTEM:
            raise doc.error(("people", i, "username"), f"{SYSTEM!r} is reserved for drp itself")
        if p.username in people:
            raise doc.error(("people", i, "username"), f"{p.username} is listed twice")
        people[p.username] = p

    def person(loc: tuple[Any, ...], username: str | None, role: Role) -> None:
        if username is None:
            return
        if username not in people:
            raise doc.error(loc, f"{username} is not in people; add them or fix the spelling")
        if role not in people[username].roles:
            raise doc.error(
                loc, f"{username} does not have the role {role.value}; add it to their roles"
            )

    service_keys: set[str] = set()
    for i, s in enumerate(org.services):
        if s.key in service_keys:
            raise doc.error(("services", i, "key"), f"service {s.key} is listed twice")
        service_keys.add(s.key)
        person(("services", i, "head_of_service"), s.head_of_service, Role.head_of_service)
        person(("services", i, "service_manager"), s.service_manager, Role.service_manager)
    team_keys: set[str] = set()
    for i, t in enumerate(org.teams):
        if t.key in team_keys:
            raise doc.error(("teams", i, "key"), f"team {t.key} is listed twice")
        team_keys.add(t.key)
        if t.service not in service_keys:
            raise doc.error(("teams", i, "service"), f"there is no service {t.service!r}")
        person(("teams", i, "team_manager"), t.team_manager, Role.team_manager)
    person(("senior", "assistant_director"), org.senior.assistant_director,
           Role.assistant_director)
    person(("senior", "director"), org.senior.director, Role.director)
    for i, p in enumerate(org.people):
        if p.team is not None and p.team not in team_keys:
            raise doc.error(("people", i, "team"), f"there is no team {p.team!r}")
    refs: set[str] = set()
    record_ids: set[str | None] = set()
    for i, c in enumerate(org.children):
        if c.ref in refs:
            raise doc.error(("children", i, "ref"), f"child {c.ref} is listed twice")
        refs.add(c.ref)
        if c.record_id is not None and c.record_id in record_ids:
            raise doc.error(("children", i, "record_id"),
                            f"record id {c.record_id} is given to two children; each child"
                            " has its own")
        record_ids.add(c.record_id)
        if c.team not in team_keys:
            raise doc.error(("children", i, "team"), f"there is no team {c.team!r}")
        person(("children", i, "iro"), c.iro, Role.iro)
        person(("children", i, "social_worker"), c.social_worker, Role.social_worker)

    # Every post the protocol makes responsible must be filled for every child's line.
    needed = {s.responsible for s in protocol.stages}
    services = {s.key: (i, s) for i, s in enumerate(org.services)}
    teams = {t.key: (i, t) for i, t in enumerate(org.teams)}
    for role, loc, holder in (
        (Role.assistant_director, ("senior",), org.senior.assistant_director),
        (Role.director, ("senior",), org.senior.director),
    ):
        if role in needed and holder is None and org.children:
            raise doc.error(loc, f"the protocol needs a {role.value}; name one under senior")
    used_teams = {c.team for c in org.children}
    for key in sorted(used_teams):
        ti, team = teams[key]
        si, service = services[team.service]
        # A vacancy: the team manager's stage falls to the service manager, else the head of
        # service (drp.ladder.access.Line.build); only a service with neither is refused.
        if (Role.team_manager in needed and team.team_manager is None
                and service.service_manager is None and service.head_of_service is None):
            raise doc.error(("teams", ti), f"team {key} has children but no team_manager, and"
                            f" service {service.key} has no service_manager or"
                            " head_of_service to take its stage; name one")
        for role in (Role.head_of_service, Role.service_manager):
            if role in needed and getattr(service, role.value) is None:
                raise doc.error(
                    ("services", si),
                    f"service {service.key} has children but no {role.value}, which the"
                    f" protocol ({protocol.name}) makes responsible at a stage",
                )
    _check_cover(doc, org)


def _check_cover(doc: LoadedYaml, org: OrgFile) -> None:
    known = {p.username for p in org.people}
    roles = {p.username: frozenset(r.value for r in p.roles) for p in org.people}
    for i, c in enumerate(org.cover):
        for name in ("person", "deputy"):
            if getattr(c, name) not in known:
                raise doc.error(("cover", i, name), f"{getattr(c, name)} is not in people; add"
                                " them or fix the spelling")
        problem = cover_problem(c.person, c.deputy, c.starts, c.ends) or deputy_problem(
            c.person, c.deputy, roles[c.person], roles[c.deputy])
        if problem is not None:
            where = problem.field or "person"
            raise doc.error(("cover", i, {"starts": "from", "ends": "to"}.get(where, where)),
                            problem.message)


def _parse(path: Path, protocol: Protocol) -> tuple[LoadedYaml, OrgFile]:
    doc = load_yaml(path)
    org = doc.validate(OrgFile)
    _check(doc, org, protocol)
    return doc, org


def parse_org(path: Path, protocol: Protocol) -> OrgFile:
    return _parse(path, protocol)[1]


def load_org(session: Session, path: Path, protocol: Protocol,
             now: datetime | None = None) -> LoadResult:
    """Apply the file in the caller's transaction (all or nothing). (What the change does to
    open alerts, and the audit of cover periods, is the service layer's:
    `AlertService.load_organisation`.)"""
    doc, org = _parse(path, protocol)
    today = (now or datetime.now(UTC)).date()
    for i, c in enumerate(org.children):
        if c.dob is not None and c.dob > today:
            raise doc.error(("children", i, "dob"), f"{c.dob.isoformat()} is after today; give"
                            " the child's date of birth")

    existing = {p.username: p for p in session.exec(select(Person))}
    people: dict[str, Person] = {}
    for p in org.people:
        row = existing.get(p.username) or Person(username=p.username, name=p.name)
        row.name, row.email, row.active = p.name, p.email, True
        session.add(row)
        people[p.username] = row
    deactivated = 0
    for username, row in existing.items():
        if username not in people and row.active:
            row.active = False
            deactivated += 1
            session.add(row)
    session.flush()

    def pid(username: str | None) -> int | None:
        return people[username].id if username else None

    def must(value: int | None) -> int:
        assert value is not None
        return value

    session.exec(delete(PersonRole))
    for p in org.people:
        for role in dict.fromkeys(p.roles):
            session.add(PersonRole(person_id=must(pid(p.username)), role=role.value))

    council = session.get(Council, 1) or Council(id=1, name=org.council)
    council.name = org.council
    council.assistant_director_id = pid(org.senior.assistant_director)
    council.director_id = pid(org.senior.director)
    session.add(council)

    services = {s.key: s for s in session.exec(select(Service))}
    for s in org.services:
        srow = services.get(s.key) or Service(key=s.key, name=s.name)
        srow.name, srow.active = s.name, True
        srow.head_of_service_id = pid(s.head_of_service)
        srow.service_manager_id = pid(s.service_manager)
        session.add(srow)
        services[s.key] = srow
    for key, srow in services.items():
        if key not in {s.key for s in org.services}:
            srow.active = False
    session.flush()

    teams = {t.key: t for t in session.exec(select(Team))}
    for t in org.teams:
        service_id = services[t.service].id
        assert service_id is not None
        trow = teams.get(t.key) or Team(key=t.key, name=t.name, service_id=service_id)
        trow.name, trow.service_id, trow.active = t.name, service_id, True
        trow.team_manager_id = pid(t.team_manager)
        session.add(trow)
        teams[t.key] = trow
    for key, trow in teams.items():
        if key not in {t.key for t in org.teams}:
            trow.active = False
    session.flush()

    session.exec(delete(TeamMember))
    for p in org.people:
        if p.team:
            session.add(TeamMember(team_id=must(teams[p.team].id), person_id=must(pid(p.username))))

    children = {c.ref: c for c in session.exec(select(Child))}
    wanted = set()
    for c in org.children:
        team_id, iro_id = teams[c.team].id, pid(c.iro)
        assert team_id is not None and iro_id is not None
        crow = children.get(c.ref) or Child(ref=c.ref, team_id=team_id, iro_id=iro_id)
        crow.team_id, crow.iro_id = team_id, iro_id
        crow.social_worker_id, crow.active = pid(c.social_worker), True
        crow.dob = c.dob
        crow.record_id = c.record_id
        session.add(crow)
        wanted.add(c.ref)
    for ref, crow in children.items():
        if ref not in wanted and crow.active:
            crow.active = False
            session.add(crow)
    session.flush()
    result = LoadResult(
        council=org.council, people=len(org.people), services=len(org.services),
        teams=len(org.teams), children=len(org.children), deactivated=deactivated,
        covers=len(org.cover),
    )
    _load_cover(session, doc, org, {u: must(pid(u)) for u in people},
                now or datetime.now(UTC), result)
    names = {must(p.id): p.name for p in people.values()}
    for key in sorted({c.team for c in org.children}):
        trow = teams[key]
        if trow.team_manager_id is None:
            result.vacancies.append(vacancy_cover(trow, services[
                next(t.service for t in org.teams if t.key == key)], names))
    return result


def _load_cover(session: Session, doc: LoadedYaml, org: OrgFile, ids: dict[str, int],
                now: datetime, result: LoadResult) -> None:
    """The file's cover periods replace those it gave before; an identical period is kept
    with its history (ended by `drp cover end` or not); those set by command stay."""
    old = {(c.person_id, c.deputy_id, c.starts, c.ends): c
           for c in session.exec(select(Cover).where(Cover.source == "file"))}
    kept: set[tuple[int, int, date, date]] = set()
    for c in org.cover:
        key = (ids[c.person], ids[c.deputy], c.starts, c.ends)
        if key in old and key not in kept:
            old[key].reason = c.reason
            session.add(old[key])
            kept.add(key)
    for key, row in old.items():
        if key not in kept:
            result.cover_removed.append(row)
            session.delete(row)
    session.flush()
    for i, c in enumerate(org.cover):
        key = (ids[c.person], ids[c.deputy], c.starts, c.ends)
        if key in kept:
            continue
        person, deputy = session.get(Person, ids[c.person]), session.get(Person, ids[c.deputy])
        assert person is not None and deputy is not None
        problem = cover_conflict(session, person, deputy, c.starts, c.ends)
        if problem is not None:
            raise doc.error(("cover", i), problem.message)
        row = Cover(person_id=ids[c.person], deputy_id=ids[c.deputy], starts=c.starts,
                    ends=c.ends, reason=c.reason, source="file", created_by=FILE,
                    created_at=now)
        session.add(row)
        session.flush()
        result.cover_set.append(row)
