"""The fortnightly digest of outstanding alerts (domain.md: "Updates are sent to Heads of
Service and Group Managers on a two-weekly basis"). Each head of service and service manager
gets one digest with the open alerts of every service they head or manage (a section a
service when there are several), overdue first; IRO managers get the whole council's list
with totals by stage, team and theme. Sent once per fortnight: the outbox key names the
fortnight and the person, so a rerun sends nothing new. The scheduled run looks every weekday
and sends on the first working day on or after the fortnight's digest day (`not_today`),
once: a run records that the fortnight's digest went (`DigestRun`, in its transaction), even
when nobody had anything to receive. Days are the council's local days (`clock.local_date`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from notifications.outbox import enqueue
from notifications.render import Renderer

from .calendar import WorkingCalendar
from .clock import local_date
from .ladder import due
from .ladder.protocol import Protocol, Role
from .models import (
    Alert,
    Child,
    Council,
    DigestRun,
    Event,
    Person,
    PersonRole,
    Referral,
    Service,
    Team,
)
from .themes import Taxonomy

# Fortnights are counted from this Monday (a council can choose its own week).
DEFAULT_ANCHOR = date(2024, 1, 1)


def fortnight_start(day: date, anchor: date = DEFAULT_ANCHOR) -> date:
    """The Monday that starts the fortnight containing `day`."""
    return anchor + timedelta(days=((day - anchor).days // 14) * 14)


def digest_day(day: date, calendar: WorkingCalendar, anchor: date = DEFAULT_ANCHOR) -> date:
    """The fortnight's digest goes on its Monday, or the next working day when that Monday is
    a bank holiday."""
    return calendar.next_working_day(fortnight_start(day, anchor))


def digest_dates(after: date, n: int, calendar: WorkingCalendar,
                 anchor: date = DEFAULT_ANCHOR) -> list[date]:
    """The next `n` digest days on or after `after`. A fortnight whose digest day falls beyond
    it (a closure of two weeks or more) has none: the next fortnight's goes that day."""
    out: list[date] = []
    start = fortnight_start(after, anchor)
    while len(out) < n:
        day = calendar.next_working_day(start)
        if after <= day < start + timedelta(days=14):
            out.append(day)
        start += timedelta(days=14)
    return out


@dataclass
class DigestReport:
    fortnight: date
    sent_to: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    missing_address: list[str] = field(default_factory=list)
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"fortnight": self.fortnight.isoformat(), "queued_for": self.sent_to,
                "already_sent": self.already_sent, "missing_address": self.missing_address,
                "skipped": self.skipped}

    def markdown(self) -> str:
        if self.skipped:
            return f"# Digest, fortnight from {self.fortnight.isoformat()}\n\n{self.skipped}\n"
        return (f"# Digest, fortnight from {self.fortnight.isoformat()}\n\n"
                f"- queued for: {', '.join(self.sent_to) or 'nobody new'}\n"
                f"- already sent this fortnight: {', '.join(self.already_sent) or 'none'}\n"
                f"- no e-mail address: {', '.join(self.missing_address) or 'none'}\n")


def _rows(session: Session, protocol: Protocol, calendar: WorkingCalendar, today: date,
          tz: ZoneInfo, taxonomy: Taxonomy | None, base_url: str) -> list[dict[str, Any]]:
    last_seq = (select(Event.alert_id, func.max(Event.seq).label("seq"))
                .group_by(col(Event.alert_id)).subquery())
    query = (
        sa_select(Alert, col(Child.ref), col(Team.name), col(Team.service_id), col(Event.kind),
                  col(Event.at), col(Referral.referred_on))
        .join(Child, col(Child.id) == Alert.child_id)
        .join(Team, col(Team.id) == Child.team_id)
        .join(last_seq, last_seq.c.alert_id == Alert.id)
        .join(Event, (col(Event.alert_id) == Alert.id) & (col(Event.seq) == last_seq.c.seq))
        .outerjoin(Referral, col(Referral.alert_id) == Alert.id)
        .where(col(Alert.status) == "open")
    )
    titles = {t.key: t.title for t in taxonomy.themes} if taxonomy else {}
    rows = []
    for alert, ref, team, service_id, kind, at, referred in session.execute(query):
        overdue = due.alert_overdue(alert, today)
        local = local_date(at, tz)
        # A referral to Cafcass runs alongside the local process: the alert is still open.
        notes = " (on hold)" if alert.on_hold else ""
        rows.append({
            "id": alert.id, "child": ref, "team": team, "service_id": service_id,
            "stage": alert.stage,
            "stage_title": protocol.title(alert.stage) + notes,
            "stage_name": protocol.title(alert.stage),  # for the totals
            "days_open": calendar.between(local_date(alert.raised_at, tz), today),
            "stage_due": alert.stage_due, "overdue": overdue,
            "theme": titles.get(alert.theme or "", alert.theme),
            # Days, local: the template writes them (with the year when not this year's).
            "last_kind": kind.replace("_", " "), "last_on": local, "referred_on": referred,
            "url": f"{base_url.rstrip('/')}/alerts/{alert.id}",
        })
    rows.sort(key=lambda r: (not r["overdue"], r["stage_due"] or date.max, r["id"]))
    return rows


def queue_digest(
    session: Session, *, protocol: Protocol, calendar: WorkingCalendar, taxonomy: Taxonomy | None,
    renderer: Renderer, base_url: str, tz: ZoneInfo, now: datetime,
    empty_note: bool = True, anchor: date = DEFAULT_ANCHOR,
) -> DigestReport:
    today = local_date(now, tz)
    fortnight = fortnight_start(today, anchor)
    report = DigestReport(fortnight=fortnight)
    if session.get(DigestRun, fortnight) is None:  # a simultaneous run: one fails to commit
        session.add(DigestRun(fortnight=fortnight, ran_at=now))
    rows = _rows(session, protocol, calendar, today, tz, taxonomy, base_url)
    council = session.get(Council, 1)
    link = f"{base_url.rstrip('/')}/outstanding"

    def send(person: Person, scope: str, part: str, mine: list[dict[str, Any]],
             totals: dict[str, list[tuple[str, int]]] | None,
             sections: list[dict[str, Any]] | None = None) -> None:
        if not mine and not empty_note:
            return
        context = {
            "council": council.name if council else "drp", "scope": scope,
            "fortnight": fortnight, "today": today, "rows": mine, "totals": totals,
            "sections": sections, "overdue": sum(1 for r in mine if r["overdue"]),
            "link": link, "link_text": "See all outstanding alerts in drp",
            "recipient": {"name": person.name, "part": part},
        }
        row = enqueue(session, key=digest_key(fortnight, person.username),
                      message="digest", alert_id=None, recipient=person.username,
                      to_addr=person.email, rendered=renderer.render("digest", context),
                      now=now)
        if row is None:
            report.already_sent.append(person.username)
        else:
            report.sent_to.append(person.username)
            if not person.email:
                report.missing_address.append(person.username)

    managers = session.exec(
        select(Person).join(PersonRole, col(PersonRole.person_id) == Person.id)
        .where(PersonRole.role == Role.iro_manager, col(Person.active))
        .order_by(col(Person.username))).all()

    def count(key: str) -> list[tuple[str, int]]:
        return sorted(Counter(str(r[key] or "not set") for r in rows).items())

    # One digest a person, with every service they head or manage (an IRO manager's covers
    # the whole council already).
    for person, posts in _overseers(session, exclude={m.id for m in managers}):
        services = sorted({service.id: service for service, _ in posts}.values(),
                          key=lambda service: service.key)
        mine = [r for r in rows if r["service_id"] in {service.id for service in services}]
        by_post: dict[str, list[str]] = {}
        for service, post in posts:
            by_post.setdefault(post, []).append(service.name)
        part = _and([f"{post} for {_and(names)}" for post, names in by_post.items()])
        sections = None
        if len(services) > 1:  # a section a service, each overdue first
            sections = [{"name": service.name, "rows": section,
                         "overdue": sum(1 for r in section if r["overdue"])}
                        for service in services
                        for section in [[r for r in mine if r["service_id"] == service.id]]]
        send(person, _and([service.name for service in services]), part, mine, None, sections)
    totals = {"stage": count("stage_name"), "team": count("team"), "theme": count("theme")}
    for person in managers:
        send(person, council.name if council else "the council", "an IRO manager", rows,
             totals)
    return report


def _overseers(session: Session, exclude: set[int | None]
               ) -> list[tuple[Person, list[tuple[Service, str]]]]:
    """Each active person who heads or manages an active service, by username, with their
    (service, post) pairs, heads of service first; `exclude`: people left out."""
    posts: dict[int, list[tuple[Service, str]]] = {}
    services = session.exec(
        select(Service).where(col(Service.active)).order_by(col(Service.key))).all()
    for post, column in (("head of service", "head_of_service_id"),
                         ("service manager", "service_manager_id")):
        for service in services:
            pid = getattr(service, column)
            if pid is not None and pid not in exclude:
                posts.setdefault(pid, []).append((service, post))
    people = [p for pid in posts if (p := session.get(Person, pid)) is not None and p.active]
    return [(p, posts[p.id]) for p in sorted(people, key=lambda p: p.username)
            if p.id is not None]


def _and(names: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def digest_key(fortnight: date, username: str) -> str:
    """The outbox key of a person's digest: one a fortnight, whatever reruns."""
    return f"digest:{fortnight.isoformat()}:{username}"


def ran_already(session: Session, fortnight: date) -> bool:
    """Whether the fortnight's digest has run (whoever, if anyone, it was queued for)."""
    return session.get(DigestRun, fortnight) is not None


def not_today(session: Session, calendar: WorkingCalendar, today: date,
              anchor: date = DEFAULT_ANCHOR) -> str | None:
    """Why the scheduled digest run (every weekday) sends nothing today, or None when it
    should send: the fortnight's digest goes on the first working day on or after its digest
    day (so a run that starts late still sends it), once."""
    fortnight, day = fortnight_start(today, anchor), digest_day(today, calendar, anchor)
    if not calendar.is_working_day(today):
        return f"{today.isoformat()} is not a working day; nothing sent"
    if today < day:
        return (f"{today.isoformat()} is before the fortnight's digest day"
                f" ({day.isoformat()}); nothing sent")
    if ran_already(session, fortnight):
        return (f"The digest for the fortnight from {fortnight.isoformat()} was already sent"
                f" (its digest day {day.isoformat()}); nothing sent")
    return None
