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

import heapq
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, insert, text, type_coerce
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from notifications.outbox import OUTBOX, row_values
from notifications.render import Renderer

from .calendar import WorkingCalendar
from .clock import local_date
from .directory import AN_IRO_MANAGER
from .ladder import due
from .ladder.protocol import Protocol
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

ALERT = Alert.__table__  # type: ignore[attr-defined]
CHILD = Child.__table__  # type: ignore[attr-defined]
TEAM = Team.__table__  # type: ignore[attr-defined]
EVENT = Event.__table__  # type: ignore[attr-defined]
REFERRAL = Referral.__table__  # type: ignore[attr-defined]

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
    """Every open alert as a digest row, overdue first: one query (columns, not entities), and
    what rows share worked out once a run (a stage's title, the working days since a raised
    day, whether dates and a hold make an alert overdue)."""
    query = (
        sa_select(ALERT.c.id, ALERT.c.stage, ALERT.c.on_hold, ALERT.c.stage_due,
                  ALERT.c.stage_responded_at.is_not(None), ALERT.c.resolution_due,
                  _raw(ALERT.c.raised_at), ALERT.c.theme, CHILD.c.ref, TEAM.c.name,
                  TEAM.c.service_id, EVENT.c.kind, _raw(EVENT.c.at), REFERRAL.c.referred_on)
        .join(CHILD, CHILD.c.id == ALERT.c.child_id)
        .join(TEAM, TEAM.c.id == CHILD.c.team_id)
        # The last event: the alert's row counts its events (last_seq, kept by every writer
        # in the event's transaction; tests/test_properties.py holds it to the log), so one
        # probe of the (alert_id, seq) index, not a max() over the event table.
        .join(EVENT, (EVENT.c.alert_id == ALERT.c.id) & (EVENT.c.seq == ALERT.c.last_seq))
        .outerjoin(REFERRAL, REFERRAL.c.alert_id == ALERT.c.id)
        .where(ALERT.c.status == "open")
    )
    themes = {t.key: t.title for t in taxonomy.themes} if taxonomy else {}
    titles: dict[tuple[str, bool], tuple[str, str]] = {}
    days_open: dict[date, int] = {}
    kinds: dict[str, str] = {}
    overdue: dict[tuple[Any, ...], bool] = {}
    url = f"{base_url.rstrip('/')}/alerts/"
    local_day = _LocalDays(tz)
    rows: list[tuple[tuple[bool, date, int], dict[str, Any]]] = []  # with each one's place
    for (id_, stage, on_hold, stage_due, responded, resolution_due, raised_at, theme, ref,
         team, service_id, kind, at, referred_on) in session.execute(query).all():
        title = titles.get((stage, on_hold))
        if title is None:
            name = protocol.title(stage)
            # A referral to Cafcass runs alongside the local process: the alert is still open.
            title = titles[stage, on_hold] = (name + " (on hold)" if on_hold else name, name)
        raised = local_day(raised_at)
        opened = days_open.get(raised)
        if opened is None:
            opened = days_open[raised] = calendar.between(raised, today)
        late = overdue.get(key := (on_hold, stage_due, responded, resolution_due))
        if late is None:
            late = overdue[key] = due.is_overdue(
                open_=True, on_hold=on_hold, stage_due=stage_due, responded=responded,
                resolution_due=resolution_due, today=today)
        words = kinds.get(kind)
        if words is None:
            words = kinds[kind] = kind.replace("_", " ")
        rows.append(((not late, stage_due or date.max, id_), {
            "id": id_, "child": ref, "team": team, "service_id": service_id, "stage": stage,
            "stage_title": title[0], "stage_name": title[1],  # the name: for the totals
            "days_open": opened, "stage_due": stage_due, "overdue": late,
            "theme": themes.get(theme or "", theme),
            # Days, local: the template writes them (with the year when not this year's).
            "last_kind": words,
            "last_on": local_day(at),
            "referred_on": referred_on, "url": f"{url}{id_}",
        }))
    rows.sort(key=itemgetter(0))  # by _order's key, made once a row
    return [row for _, row in rows]


def _raw(column: Any) -> Any:
    """An instant column as the driver gives it (PostgreSQL: aware, in the session's zone;
    SQLite: naive UTC), without UTCDateTime's turn to UTC: its local day in one conversion."""
    return type_coerce(column, DateTime(timezone=True))


class _LocalDays:
    """`clock.local_date` of instants as `_raw` reads them. SQLite's (naive UTC) are moved by
    the zone's offset, looked up once an hour of UTC and kept only when it holds for the whole
    hour (else worked out for the instant): a datetime's replace and astimezone cost more than
    a digest line's template."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.offsets: dict[tuple[int, int, int, int], timedelta | None] = {}

    def __call__(self, instant: datetime) -> date:
        if instant.tzinfo is not None:
            return instant.astimezone(self.tz).date()
        hour = (instant.year, instant.month, instant.day, instant.hour)
        try:
            offset = self.offsets[hour]
        except KeyError:
            start = datetime(*hour, tzinfo=UTC)
            first = start.astimezone(self.tz).utcoffset()
            last = (start + timedelta(hours=1, microseconds=-1)).astimezone(self.tz).utcoffset()
            offset = self.offsets[hour] = first if first == last else None
        if offset is None:
            return instant.replace(tzinfo=UTC).astimezone(self.tz).date()
        return (instant + offset).date()


def _order(row: dict[str, Any]) -> tuple[bool, date, int]:
    """Overdue first, then by stage due date, then by number."""
    return (not row["overdue"], row["stage_due"] or date.max, row["id"])


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
    managers = session.exec(
        select(Person).join(PersonRole, col(PersonRole.person_id) == Person.id)
        .where(*AN_IRO_MANAGER)
        .order_by(col(Person.username))).all()
    # One digest a person, with every service they head or manage (an IRO manager's covers
    # the whole council already); the IRO managers' after.
    overseers = _overseers(session, exclude={m.id for m in managers})
    people = [p for p, _ in overseers] + list(managers)
    # Digests already queued this fortnight (a rerun), in one query: never rendered again.
    keys = [digest_key(fortnight, p.username) for p in people]
    queued = set(session.scalars(sa_select(OUTBOX.c.key).where(OUTBOX.c.key.in_(keys)))
                 ) if keys else set()
    if empty_note and all(k in queued for k in keys):  # nobody new: no rows wanted
        rows: list[dict[str, Any]] = []
    else:
        rows = _rows(session, protocol, calendar, today, tz, taxonomy, base_url)
    council = session.get(Council, 1)
    link = f"{base_url.rstrip('/')}/outstanding"
    new: list[dict[str, Any]] = []

    def send(person: Person, scope: str, part: str, mine: list[dict[str, Any]],
             totals: dict[str, list[tuple[str, int]]] | None,
             sections: list[dict[str, Any]] | None = None) -> None:
        if not mine and not empty_note:
            return
        key = digest_key(fortnight, person.username)
        if key in queued:
            report.already_sent.append(person.username)
            return
        queued.add(key)
        context = {
            "council": council.name if council else "drp", "scope": scope,
            "fortnight": fortnight, "today": today, "rows": mine, "totals": totals,
            "sections": sections, "overdue": sum(1 for r in mine if r["overdue"]),
            "link": link, "link_text": "See all outstanding alerts in drp",
            "recipient": {"name": person.name, "part": part},
        }
        new.append(row_values(key=key, message="digest", alert_id=None,
                              recipient=person.username, to_addr=person.email,
                              rendered=renderer.render("digest", context), now=now))
        report.sent_to.append(person.username)
        if not person.email:
            report.missing_address.append(person.username)

    by_service: dict[int | None, list[dict[str, Any]]] = {}
    for r in rows:  # in the digest's order, each service's alerts
        by_service.setdefault(r["service_id"], []).append(r)
    for person, posts in overseers:
        services = sorted({service.id: service for service, _ in posts}.values(),
                          key=lambda service: service.key)
        lists = [by_service.get(service.id, []) for service in services]
        mine = lists[0] if len(lists) == 1 else list(heapq.merge(*lists, key=_order))
        by_post: dict[str, list[str]] = {}
        for service, post in posts:
            by_post.setdefault(post, []).append(service.name)
        part = _and([f"{post} for {_and(names)}" for post, names in by_post.items()])
        sections = None
        if len(services) > 1:  # a section a service, each overdue first
            sections = [{"name": service.name, "rows": section,
                         "overdue": sum(1 for r in section if r["overdue"])}
                        for service, section in zip(services, lists, strict=True)]
        send(person, _and([service.name for service in services]), part, mine, None, sections)

    def count(key: str) -> list[tuple[str, int]]:
        return sorted(Counter(str(r[key] or "not set") for r in rows).items())

    totals = {"stage": count("stage_name"), "team": count("team"), "theme": count("theme")}
    for person in managers:
        send(person, council.name if council else "the council", "an IRO manager", rows,
             totals)
    if new:  # every new digest in one statement
        _fast_compression(session)
        session.execute(insert(OUTBOX), new)
    return report


def _fast_compression(session: Session) -> None:
    """PostgreSQL compresses a long body as it stores it (pglz by default): for the digests,
    megabytes of text and HTML, that took longer than the rendering. lz4, where the server has
    it (PostgreSQL 14 and later, built with it), for this transaction's rows only; the
    bodies read back the same."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(
            "SELECT set_config('default_toast_compression', 'lz4', true) FROM pg_settings"
            " WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"))


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
    people = session.exec(select(Person).where(col(Person.id).in_(list(posts)),
                                               col(Person.active))).all() if posts else []
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
