"""A council-sized organisation for the simulation: services, teams, IROs, social workers,
managers and children, as the organisation document `drp org load` reads; or the one already
in the database, for a year added on top of it."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from ...errors import BadValue
from ...ladder.line import Line
from ...ladder.protocol import LINE_ROLES, Role
from ...models import Child, Council, Person, PersonRole, Service, Team
from .profiles import Profile
from .words import FIRST, LAST

# --- the organisation -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildLine:
    ref: str
    service: str
    iro: str
    posts: dict[str, str]  # role -> username on the child's line


@dataclass
class Organisation:
    council: str
    document: dict[str, Any]
    children: list[ChildLine]
    iro_managers: list[str]
    by_service: dict[str, list[int]]  # service key -> indexes into children

    def counts(self) -> dict[str, int]:
        doc = self.document
        return {"services": len(doc["services"]), "teams": len(doc["teams"]),
                "iros": sum(1 for p in doc["people"] if "iro" in p["roles"]),
                "children": len(doc["children"]), "people": len(doc["people"])}


def build_org(profile: Profile, rng: random.Random) -> Organisation:
    """A council-sized organisation: services, teams, IROs with caseloads of about 60,
    social workers, managers, an assistant director and a director."""
    names = rng.sample([(f, s) for f in FIRST for s in LAST], len(FIRST) * len(LAST))
    people: list[dict[str, Any]] = []
    taken: set[str] = set()

    def person(prefix: str, role: str, team: str | None = None) -> str:
        first, last = names.pop()
        base = f"{prefix}.{first[0]}{re.sub(r'[^a-z]', '', last.lower())}".lower()
        username, n = base, 1
        while username in taken:
            n += 1
            username = f"{base}{n}"
        taken.add(username)
        row: dict[str, Any] = {"username": username, "name": f"{first} {last}",
                               "email": f"{username}@{profile.domain}", "roles": [role]}
        if team:
            row["team"] = team
        people.append(row)
        return username

    iros = [person("iro", Role.iro.value) for _ in range(profile.iros)]
    managers = [person("irom", Role.iro_manager.value) for _ in range(profile.iro_managers)]
    ad = person("ad", Role.assistant_director.value)
    dcs = person("dcs", Role.director.value)
    services: list[dict[str, Any]] = []
    teams: list[dict[str, Any]] = []
    team_posts: list[tuple[str, str, dict[str, str], list[str]]] = []
    for shape in profile.services:
        hos = person("hos", Role.head_of_service.value)
        sm = person("sm", Role.service_manager.value)
        services.append({"key": shape.key, "name": shape.name, "head_of_service": hos,
                         "service_manager": sm})
        for j in range(1, shape.teams + 1):
            key = f"{shape.key}-{j}"
            tm = person("tm", Role.team_manager.value)
            teams.append({"key": key, "name": f"{shape.name} team {j}", "service": shape.key,
                          "team_manager": tm})
            workers = [person("sw", Role.social_worker.value, key)
                       for _ in range(profile.social_workers_per_team)]
            posts = {Role.team_manager.value: tm, Role.service_manager.value: sm,
                     Role.head_of_service.value: hos, Role.assistant_director.value: ad,
                     Role.director.value: dcs}
            team_posts.append((key, shape.key, posts, workers))
    caseloads = [iros[i % len(iros)] for i in range(profile.children)]
    rng.shuffle(caseloads)
    children: list[ChildLine] = []
    rows: list[dict[str, Any]] = []
    by_service: dict[str, list[int]] = {}
    for i in range(profile.children):
        team_key, service_key, posts, workers = team_posts[i % len(team_posts)]
        ref = f"C{10001 + i}"
        sw = rng.choice(workers)
        rows.append({"ref": ref, "team": team_key, "iro": caseloads[i], "social_worker": sw})
        children.append(ChildLine(ref=ref, service=service_key, iro=caseloads[i],
                                  posts={**posts, Role.social_worker.value: sw}))
        by_service.setdefault(service_key, []).append(i)
    document = {"council": profile.council, "people": people, "services": services,
                "teams": teams, "senior": {"assistant_director": ad, "director": dcs},
                "children": rows}
    return Organisation(profile.council, document, children, managers, by_service)


def from_database(session: Session, council: str) -> Organisation:
    """The organisation already in the database, for a year added on top of it (`--add`):
    its active children, each with the people on their management line (a vacant post
    filled from above, as the service layer fills it, else from below)."""
    people = {p.id: p for p in session.exec(select(Person))}
    roles: dict[int, set[str]] = {}
    for pr in session.exec(select(PersonRole)):
        roles.setdefault(pr.person_id, set()).add(pr.role)
    teams = {t.id: t for t in session.exec(select(Team))}
    services = {s.id: s for s in session.exec(select(Service))}
    row = session.get(Council, 1)
    children: list[ChildLine] = []
    by_service: dict[str, list[int]] = {}
    rows: list[dict[str, Any]] = []
    for child in session.exec(select(Child).where(col(Child.active)).order_by(col(Child.id))):
        iro = people.get(child.iro_id)
        if iro is None or not iro.active:
            continue
        team = teams[child.team_id]
        service = services[team.service_id]
        line = Line.build(child, team, service, row)
        held = [(role, people.get(line.holder(role) or 0)) for role in LINE_ROLES]
        names = [p.username if p is not None and p.active else None for _r, p in held]
        posts: dict[str, str] = {}
        for i, (role, _p) in enumerate(held):
            above = [n for n in names[i:] if n] or [n for n in reversed(names[:i]) if n]
            if above:
                posts[role.value] = above[0]
        if len(posts) < len(LINE_ROLES):
            continue  # nobody at all on the line
        children.append(ChildLine(child.ref, service.key, iro.username, posts))
        by_service.setdefault(service.key, []).append(len(children) - 1)
        rows.append({"ref": child.ref})
    if not children:
        raise BadValue("the database has no active children with an IRO to raise alerts"
                       " about; load an organisation (drp org load) or use a new database")
    document = {
        "council": row.name if row else council,
        "people": [{"username": p.username, "roles": sorted(roles.get(p.id or 0, ()))}
                   for p in people.values() if p.active],
        "services": [s.key for s in services.values() if s.active],
        "teams": [t.key for t in teams.values() if t.active], "children": rows}
    managers = [p.username for p in people.values()
                if p.active and Role.iro_manager.value in roles.get(p.id or 0, ())]
    return Organisation(str(document["council"]), document, children, managers, by_service)
