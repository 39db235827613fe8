"""The organisation's changes as they reach alerts: cover periods (who deputises for whom),
and transfers when a reloaded organisation file moves a child or removes a person.

- Cover: `set_cover`, `end_cover`, `list_covers`. Who may record cover is
  `drp.ladder.access.may_set_cover`; what makes a period valid is `drp.org.cover_problem` and
  `drp.org.cover_conflict` (the organisation file's `cover:` list asks the same). Every
  period set or ended is audited (an access-log row) and both people are told by e-mail.
- `load_organisation`: `drp org load` and the administration page. In one transaction it
  loads the file and moves every open alert whose child changed team or IRO, or whose
  responsible person at its stage changed: the alert takes the child's new IRO, an event
  `transferred` names old and new, and the new IRO and responsible manager are told."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import col, select

from notifications.outbox import enqueue

from .. import audit
from ..errors import BadValue, Conflict, NotPermitted
from ..ladder import access
from ..ladder.access import Actor, Line
from ..models import Alert, Child, Council, Cover, Event, Person, PersonRole, Service, Team
from ..org import LoadResult, cover_conflict, cover_problem, deputy_problem, load_org
from . import inputs
from .unit import UnitOfWork, known_id

REASON_MAX = 500
# What each cover e-mail tells its two recipients.
COVER_PARTS = {"deputy": "the deputy named in a cover period",
               "absent": "the person whose work is covered"}


@dataclass(frozen=True)
class CoverView:
    """A cover period as people read it. `state`: planned, running, over or ended."""

    person: str
    person_name: str
    deputy: str
    deputy_name: str
    starts: date
    ends: date
    reason: str | None
    source: str  # "command" or "file"
    set_by: str
    set_at: datetime
    ended_at: datetime | None
    state: str

    def public(self) -> dict[str, Any]:
        """The JSON of `drp cover list --json`."""
        return {"person": self.person, "deputy": self.deputy, "from": self.starts.isoformat(),
                "to": self.ends.isoformat(), "reason": self.reason, "source": self.source,
                "set_by": self.set_by, "set_at": self.set_at.isoformat(),
                "ended_at": self.ended_at.isoformat() if self.ended_at else None,
                "state": self.state}


@dataclass(frozen=True)
class Transfer:
    """One open alert that followed its child: (team, IRO, responsible) before and after."""

    alert_id: int
    child: str
    before: dict[str, str | None]
    after: dict[str, str | None]

    def changes(self) -> list[str]:
        """What changed, old to new ("team west-a to east-a", "IRO iro.ben to iro.ada")."""
        return [f"{label} {self.before[what] or 'nobody'} to {self.after[what] or 'nobody'}"
                for what, label in (("team", "team"), ("iro", "IRO"),
                                    ("responsible", "responsible"))
                if self.before[what] != self.after[what]]

    def describe(self) -> str:
        return f"alert {self.alert_id} (child {self.child}): {'; '.join(self.changes())}"


@dataclass
class OrgLoad:
    """What `load_organisation` did: the file's load, and the alerts that followed."""

    result: LoadResult
    transfers: list[Transfer] = field(default_factory=list)
    # Cover set by command that ended because its person or deputy left the file.
    covers_ended: list[CoverView] = field(default_factory=list)

    def lines(self) -> list[str]:
        r = self.result
        gone = (f"; {r.deactivated} people no longer listed marked inactive"
                if r.deactivated else "")
        cover = f", {r.covers} cover periods" if r.covers else ""
        return [f"Loaded {r.council}: {r.people} people, {r.services} services, {r.teams}"
                f" teams, {r.children} children{cover}{gone}.",
                *(f"Vacancy: {v}." for v in r.vacancies),
                *(f"Cover ended: {c.deputy} covering for {c.person} (one of them is no longer"
                  " in the file)." for c in self.covers_ended),
                *(f"Transfer: {t.describe()}." for t in self.transfers)]


class Organisation(UnitOfWork):
    # -- cover ----------------------------------------------------------------------------
    def set_cover(self, username: str, person: str, deputy: str, starts: date, ends: date,
                  reason: str | None = None) -> CoverView:
        """Record that `deputy` covers `person` from `starts` to `ends` (both included).
        Refused, with nothing written: cover for oneself, dates out of order or outside
        2000-2100, an unknown or inactive person or deputy, a deputy on the other side of
        the IRO's independence (`access.may_deputise`), a period overlapping the person's
        other cover, a deputy away themselves then, a person covering for someone else
        then (cover does not chain)."""
        actor = self.actor(username)
        absent = self._active_person(person, "person")
        if not access.may_set_cover(self.s, actor, known_id(absent.id)):
            raise NotPermitted(f"{username} may not set cover for {person}: only"
                               f" {access.WHO_SETS_COVER} may")
        problem = cover_problem(person, deputy, starts, ends)
        if problem is not None:
            raise problem
        stand_in = self._active_person(deputy, "deputy")
        problem = deputy_problem(person, deputy, self._roles(absent), self._roles(stand_in))
        if problem is not None:
            raise problem
        text = inputs.text(reason, "the reason", required=False, limit=REASON_MAX)
        problem = cover_conflict(self.s, absent, stand_in, starts, ends)
        if problem is not None:
            raise problem
        row = Cover(person_id=known_id(absent.id), deputy_id=known_id(stand_in.id),
                    starts=starts, ends=ends, reason=text, source="command",
                    created_by=actor.username, created_at=self.now)
        self.s.add(row)
        self.s.flush()
        self._cover_done(actor, "cover_set", row)
        self._deputies = None
        return self._cover_view(row)

    def end_cover(self, username: str, person: str) -> list[CoverView]:
        """End `person`'s cover: every period running or still to come (one already over is
        refused: there is nothing to end). The deputy no longer receives their work."""
        actor = self.actor(username)
        absent = self.s.exec(select(Person).where(Person.username == person)).first()
        if absent is None:
            raise BadValue(f"there is no person {person!r}; check the username",
                           field="person")
        if not access.may_set_cover(self.s, actor, known_id(absent.id)):
            raise NotPermitted(f"{username} may not end cover for {person}: only"
                               f" {access.WHO_SETS_COVER} may")
        rows = list(self.s.exec(select(Cover).where(
            Cover.person_id == absent.id, col(Cover.ended_at).is_(None))
            .order_by(col(Cover.starts), col(Cover.id))))
        rows = [r for r in rows if r.ends >= self.today]
        if not rows:
            raise BadValue(f"{person} has no cover running or planned to end (drp cover list"
                           " shows cover periods)", field="person")
        for row in rows:
            row.ended_at = self.now
            self.s.add(row)
            self._cover_done(actor, "cover_end", row)
        self.s.flush()
        self._deputies = None
        return [self._cover_view(r) for r in rows]

    def list_covers(self, username: str = access.SYSTEM) -> list[CoverView]:
        """Every cover period, earliest first (who covers whom is not a child's record:
        anyone signed in may read it)."""
        self.actor(username)
        rows = self.s.exec(select(Cover).order_by(col(Cover.starts), col(Cover.id))).all()
        return [self._cover_view(r) for r in rows]

    def _roles(self, person: Person) -> frozenset[str]:
        return frozenset(self.s.exec(select(PersonRole.role).where(
            PersonRole.person_id == person.id)))

    def _active_person(self, username: str, what: str) -> Person:
        row = self.s.exec(select(Person).where(Person.username == username)).first()
        if row is None or not row.active:
            raise BadValue(f"there is no active person {username!r} to name as the {what};"
                           " check the username (people come from `drp org load`)",
                           field=what)
        self._kept.append(row)
        return row

    def _cover_view(self, row: Cover) -> CoverView:
        person, deputy = self.s.get(Person, row.person_id), self.s.get(Person, row.deputy_id)
        assert person is not None and deputy is not None
        state = ("ended" if row.ended_at else "over" if row.ends < self.today
                 else "planned" if row.starts > self.today else "running")
        return CoverView(person=person.username, person_name=person.name,
                         deputy=deputy.username, deputy_name=deputy.name, starts=row.starts,
                         ends=row.ends, reason=row.reason, source=row.source,
                         set_by=row.created_by, set_at=row.created_at, ended_at=row.ended_at,
                         state=state)

    def _cover_done(self, actor: Actor, action: str, row: Cover, *, tell: bool = True
                    ) -> None:
        """Audit a cover period set or ended, and tell the deputy and the absent person."""
        view = self._cover_view(row)
        how = " (organisation file)" if row.source == "file" else ""
        audit.record(
            self.s, self.origin, at=self.now, actor=actor.username, action=action,
            detail=(f"{view.person} covered by {view.deputy} from {view.starts.isoformat()} to"
                    f" {view.ends.isoformat()}{how}: {view.reason or 'no reason given'}"))
        if not tell or self.notifier is None:
            return
        message = "cover_set" if action == "cover_set" else "cover_ended"
        council = self.s.get(Council, 1)
        for username, role in ((view.deputy, "deputy"), (view.person, "absent")):
            who = self.s.exec(select(Person).where(Person.username == username)).one()
            if not who.active:
                continue
            context = {
                "council": council.name if council else "drp",
                "cover": {"person": view.person_name, "deputy": view.deputy_name,
                          "starts": view.starts, "ends": view.ends, "reason": view.reason},
                "actor": "An administrator" if actor.is_system else actor.name,
                "link": self.notifier.base_url,
                "link_text": "Open drp", "role": role,
                "today": self.today,  # the message's day: another year's dates carry theirs
                "recipient": {"name": who.name, "part": COVER_PARTS[role]},
            }
            queued = enqueue(self.s, key=f"{message}:{row.id}:{self.now.isoformat()}:{username}",
                             message=message, alert_id=None, recipient=username,
                             to_addr=who.email, now=self.now,
                             rendered=self.notifier.renderer.render(message, context))
            if queued is not None:
                self.queued += 1
                if not who.email:
                    self.notifier.missing.append(
                        f"{username} has no e-mail address, so was not sent '{message}'; add"
                        " one in the organisation file, then `drp outbox retry --all-failed`")

    # -- loading the organisation file, and transfers ---------------------------------------
    def load_organisation(self, path: Path, username: str = access.SYSTEM) -> OrgLoad:
        """Load (or reload) the organisation file and, in the same transaction, move every
        open alert whose child changed team or IRO, or whose responsible person at its stage
        changed (a person removed or replaced). The command line acts as the system; on the
        web, an administrator. An alert changed by someone while its transfer is written
        makes the whole load a Conflict: nothing is loaded, and loading again is safe."""
        try:
            return self._load_organisation(path, username)
        except StaleDataError:
            self.s.rollback()
            raise Conflict("an alert changed while the organisation file was being loaded,"
                           " so nothing was loaded; load it again") from None

    def _load_organisation(self, path: Path, username: str) -> OrgLoad:
        actor = self.actor(username)
        if not (actor.is_system or access.may_administer(actor.roles)):
            raise NotPermitted(f"{username} may not load the organisation file: only an"
                               " administrator may")
        before = {aid: self._placement(alert, Line.of(self.s, child))
                  for aid, alert, child in self._open_alerts()}
        counts = self._counts()
        result = load_org(self.s, path, self.protocol, now=self.now)
        self._deputies = None  # the file's cover periods may have changed
        self._actors.clear()
        self.directory.forget_managers()  # and who the IRO managers are
        self.directory.people.clear()  # copies as read before the file changed them
        for row in result.cover_removed:
            self._cover_done(actor, "cover_end", row,
                             tell=row.ends >= self.today and row.ended_at is None)
        for row in result.cover_set:
            self._cover_done(actor, "cover_set", row, tell=row.ends >= self.today)
        load = OrgLoad(result)
        # Cover set by command ends with its person's or deputy's place in the file.
        for row in self.s.exec(select(Cover).where(col(Cover.ended_at).is_(None))
                               .order_by(col(Cover.id))).all():
            pair = (self.s.get(Person, row.person_id), self.s.get(Person, row.deputy_id))
            if all(p is not None and p.active for p in pair):
                continue
            row.ended_at = self.now
            self.s.add(row)
            self._cover_done(actor, "cover_end", row, tell=row.ends >= self.today)
            load.covers_ended.append(self._cover_view(row))
        self._deputies = None
        last: Alert | None = None
        for aid, alert, child in self._open_alerts():
            if aid not in before:
                continue
            line = self.line_of(child)
            was, now = before[aid], self._placement(alert, line, iro_id=child.iro_id)
            if was == now:
                continue
            load.transfers.append(self._transfer(actor, alert, line, was, now))
            last = alert
        if last is not None:
            self._commit_point(last)
        self.s.flush()
        self._audit_load(actor, counts, load)
        return load

    def _counts(self) -> dict[str, int]:
        """How many of each the organisation has now (active people and children)."""
        def count(model: Any, *where: Any) -> int:
            return int(self.s.exec(select(func.count()).select_from(model).where(*where)).one())

        return {"people": count(Person, col(Person.active)),
                "services": count(Service, col(Service.active)),
                "teams": count(Team, col(Team.active)),
                "children": count(Child, col(Child.active)),
                "cover periods": count(Cover, col(Cover.ended_at).is_(None))}

    def _audit_load(self, actor: Actor, before: dict[str, int], load: OrgLoad) -> None:
        """The load's audit row: who, from where, and what changed in counts (no names: a
        person's or a child's details stay in the file and the tables)."""
        after = self._counts()

        def change(key: str) -> str:
            delta = after[key] - before[key]
            return f"{key} {after[key]}" + (f" ({delta:+d})" if delta else "")

        r = load.result
        ended = len(r.cover_removed) + len(load.covers_ended)
        detail = "; ".join([*(change(k) for k in after), f"marked inactive {r.deactivated}",
                            f"cover set {len(r.cover_set)}, ended {ended}",
                            f"alerts transferred {len(load.transfers)}"])
        audit.record(self.s, self.origin, at=self.now, actor=actor.username,
                     action="org_load", detail=detail)

    def _open_alerts(self) -> list[tuple[int, Alert, Child]]:
        out = []
        for alert in self.s.exec(select(Alert).where(Alert.status == "open")
                                 .order_by(col(Alert.id))):
            child = self.s.get(Child, alert.child_id)
            assert child is not None
            self._kept.append((alert, child))
            out.append((known_id(alert.id), alert, child))
        return out

    def _placement(self, alert: Alert, line: Line, iro_id: int | None = None
                   ) -> tuple[str, int, int | None]:
        """(team key, IRO id, the responsible post's holder at the alert's stage)."""
        holder = (line.holder(self.protocol.stage(alert.stage).responsible)
                  if alert.stage in self.protocol.keys else None)
        return line.team.key, iro_id if iro_id is not None else alert.iro_id, holder

    def _transfer(self, actor: Actor, alert: Alert, line: Line,
                  was: tuple[str, int, int | None], now: tuple[str, int, int | None]
                  ) -> Transfer:
        def side(place: tuple[str, int, int | None]) -> dict[str, str | None]:
            return {"team": place[0], "iro": self._username(place[1]),
                    "responsible": self._username(place[2])}

        moved = Transfer(known_id(alert.id), line.child.ref, side(was), side(now))
        alert.iro_id = now[1]
        if was[2] != now[2]:
            # Someone else is responsible now: their acknowledgement is still to come.
            alert.acknowledged_by_id, alert.acknowledged_at = None, None
            alert.ack_reminded_for = None
        self._lines[moved.alert_id] = line
        self._kept.append((alert, line))
        # Events stay in order: a load run on a clock behind the alert's last event (a
        # simulated one) dates the transfer with that event rather than refusing the load.
        instant = self.now
        last = self.s.exec(select(func.max(Event.at)).where(Event.alert_id == alert.id)).one()
        self._now = max(instant, last) if last is not None else instant
        try:
            event = self._event(
                alert, actor, "transferred", from_stage=alert.stage, to_stage=alert.stage,
                line=line, comment=f"Transferred with the child: {'; '.join(moved.changes())}",
                data={"from": moved.before, "to": moved.after})
        finally:
            self._now = instant
        self._notice(alert, line, event, transfer={
            "was": self._in_words(was), "now": self._in_words(now),
            "iro_changed": was[1] != now[1], "team_changed": was[0] != now[0]})
        return moved

    def _in_words(self, place: tuple[str, int, int | None]) -> dict[str, str]:
        team = self.s.exec(select(Team).where(Team.key == place[0])).one()
        iro, holder = self.s.get(Person, place[1]), self.s.get(Person, place[2] or 0)
        return {"team": team.name, "iro": iro.name if iro else "nobody",
                "responsible": holder.name if holder else "nobody"}
