"""Load (and re-load, to update) an organisation file: all or nothing.

People, services, teams and children not in a re-loaded file are marked inactive, never
deleted: the event log still names them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel import Session, delete, select

from .configfile import LoadedYaml, load_yaml
from .ladder.access import SYSTEM
from .ladder.protocol import Protocol, Role
from .models import Child, Council, Person, PersonRole, Service, Team, TeamMember

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")]
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address (name@example.org)")
    return value


Email = Annotated[str, AfterValidator(_email)]
ChildRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9/_-]{0,39}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonIn(_In):
    username: Username
    name: str = Field(min_length=1, max_length=200)
    email: Email | None = None
    roles: list[Role] = Field(min_length=1)
    team: Key | None = None  # a social worker's team (optional)


class ServiceIn(_In):
    key: Key
    name: str = Field(min_length=1, max_length=200)
    head_of_service: Username | None = None
    service_manager: Username | None = None


class TeamIn(_In):
    key: Key
    name: str = Field(min_length=1, max_length=200)
    service: Key
    team_manager: Username | None = None


class SeniorIn(_In):
    assistant_director: Username | None = None
    director: Username | None = None


class ChildIn(_In):
    ref: ChildRef
    team: Key
    iro: Username
    social_worker: Username | None = None


class OrgFile(_In):
    council: str = Field(min_length=1, max_length=200)
    people: list[PersonIn] = Field(min_length=1)
    services: list[ServiceIn] = Field(default_factory=list)
    teams: list[TeamIn] = Field(default_factory=list)
    senior: SeniorIn = SeniorIn()
    children: list[ChildIn] = Field(default_factory=list)


@dataclass
class LoadResult:
    council: str
    people: int
    services: int
    teams: int
    children: int
    deactivated: int


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
    for i, c in enumerate(org.children):
        if c.ref in refs:
            raise doc.error(("children", i, "ref"), f"child {c.ref} is listed twice")
        refs.add(c.ref)
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
        if Role.team_manager in needed and team.team_manager is None:
            raise doc.error(("teams", ti), f"team {key} has children but no team_manager")
        si, service = services[team.service]
        for role in (Role.head_of_service, Role.service_manager):
            if role in needed and getattr(service, role.value) is None:
                raise doc.error(
                    ("services", si),
                    f"service {service.key} has children but no {role.value}, which the"
                    f" protocol ({protocol.name}) makes responsible at a stage",
                )


def parse_org(path: Path, protocol: Protocol) -> OrgFile:
    doc = load_yaml(path)
    org = doc.validate(OrgFile)
    _check(doc, org, protocol)
    return org


def load_org(session: Session, path: Path, protocol: Protocol) -> LoadResult:
    """Apply the file in the caller's transaction (all or nothing)."""
    org = parse_org(path, protocol)

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
        session.add(crow)
        wanted.add(c.ref)
    for ref, crow in children.items():
        if ref not in wanted and crow.active:
            crow.active = False
            session.add(crow)
    session.flush()
    return LoadResult(
        council=org.council, people=len(org.people), services=len(org.services),
        teams=len(org.teams), children=len(org.children), deactivated=deactivated,
    )
