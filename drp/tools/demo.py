"""`drp demo`: the demo organisation and a handful of alerts at different stages, written
through the service layer with backdated clocks, exactly as people would have made them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from .. import db, mail
from ..alerts import ActionIn, AlertService
from ..calendar import WorkingCalendar
from ..clock import Clock, FixedClock, clock_for
from ..errors import BadValue
from ..ladder.protocol import Protocol
from ..models import Alert, Person, PersonRole
from ..org import load_org
from ..settings import CONFIG_DIR, Settings
from ..themes import Taxonomy

DEMO_ORG = CONFIG_DIR / "demo.yaml"
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - the demo's published password


def _script(protocol: Protocol) -> list[tuple[int, str, Callable[[AlertService], Any]]]:
    """(working days ago, who, what). Alert ids follow the order of raising."""
    k = protocol.keys
    top = k[-1]
    return [
        # 1: informal, fresh, with the IRO's own (shorter) informal due date
        (2, "iro.patel", lambda s: s.raise_alert(
            "iro.patel", "C1001", "No social work report shared before the review",
            impact="The child's review could not consider an up-to-date assessment.",
            theme="accountability_record_keeping", due_on=s.cal.add(s.today, 3))),
        # 2: stage 1, responded with agreed actions
        (9, "iro.walsh", lambda s: s.raise_alert(
            "iro.walsh", "C1004", "Pathway plan not started at 17",
            impact="Preparation for independence is at risk.", theme="leaving_care",
            stage=k[1])),
        (8, "tm.clarke", lambda s: s.respond(
            2, "tm.clarke", "Pathway plan allocated to a personal adviser; first meeting booked.",
            [ActionIn("Pathway plan completed and shared with the IRO",
                      s.cal.add(s.today, 10))])),
        # 3: informal -> stage 1 -> stage 2, overdue
        (16, "iro.mensah", lambda s: s.raise_alert(
            "iro.mensah", "C2001", "Permanence plan drifting: no SGO assessment started",
            impact="Stability for the child is delayed.", theme="permanence_planning")),
        (11, "iro.mensah", lambda s: s.escalate(
            3, "iro.mensah", "No response within the informal timescale.")),
        (6, "iro.mensah", lambda s: s.escalate(
            3, "iro.mensah", "Stage 1 response did not set a date for the assessment.")),
        (5, "hos.murray", lambda s: s.acknowledge(3, "hos.murray")),
        # 4: resolved at informal
        (20, "iro.patel", lambda s: s.raise_alert(
            "iro.patel", "C1005", "Health assessment overdue",
            theme="holistic_rights_needs")),
        (18, "sw.evans", lambda s: s.respond(4, "sw.evans", "Booked with the LAC nurse.")),
        (17, "iro.patel", lambda s: s.resolve(4, "iro.patel", "Health assessment completed.")),
        # 5: on hold awaiting a court hearing
        (7, "iro.walsh", lambda s: s.raise_alert(
            "iro.walsh", "C2002", "Section 20 arrangement without a plan for proceedings",
            theme="legal_status", stage=k[1])),
        (3, "iro.walsh", lambda s: s.hold(
            5, "iro.walsh", "Awaiting the court hearing listed next month.",
            until=s.cal.add(s.today, 15))),
        # 6: raised at stage 1 by the child's IRO, bypassed to the last stage, then referred
        # to Cafcass alongside the local process (the alert stays open), Cafcass accepts
        (25, "iro.mensah", lambda s: s.raise_alert(
            "iro.mensah", "C2003", "Repeated missing episodes with no risk assessment",
            theme="safeguarding", stage=k[1])),
        (24, "iro.mensah", lambda s: s.escalate(
            6, "iro.mensah", "Risk to the child is immediate.", to=top)),
        (20, "dcs.green", lambda s: s.respond(
            6, "dcs.green", "A strategy meeting will be convened; no date yet.")),
        (12, "iro.mensah", lambda s: s.refer(
            6, "iro.mensah", "No plan to keep the child safe after the director's response,"
            " after consulting the IRO manager.",
            legal_advice="Legal services (duty solicitor)", advised_on=s.cal.add(s.today, -1))),
        (5, "iro.mensah", lambda s: s.cafcass_response(
            6, "iro.mensah", "accepted", note="Cafcass's service manager has the case.")),
        # 7: withdrawn
        (14, "iro.patel", lambda s: s.raise_alert(
            "iro.patel", "C2004", "Personal adviser not allocated", theme="leaving_care")),
        (13, "iro.patel", lambda s: s.withdraw(7, "iro.patel", "Raised on the wrong child.")),
        # 8: informal, waiting for the team
        (4, "iro.walsh", lambda s: s.raise_alert(
            "iro.walsh", "C2006", "Contact arrangements with siblings not reviewed",
            theme="holistic_rights_needs")),
    ]


DEMO_COUNCIL = "Exampleshire County Council"


def _refuse_to_erase_a_live_council(engine: Engine) -> None:
    """`--reset` drops every table, the audit logs with them: only ever the demo's."""
    from sqlalchemy import inspect, text

    if "council" not in inspect(engine).get_table_names():
        return
    with engine.connect() as conn:
        name = conn.execute(text("SELECT name FROM council WHERE id = 1")).scalar()
    if name is not None and name != DEMO_COUNCIL:
        raise BadValue(
            f"this database holds {name}'s records, not the demo's; `drp demo --reset` would"
            " erase them and their audit log, so it is refused. Point DRP_DATABASE_URL at a"
            " database of its own for the demo")


def _forget_good_practice(engine: Engine) -> None:
    """Migration 0007's downgrade refuses a database holding good-practice records (older
    schemas cannot hold them); the demo's are about to be erased with everything else."""
    from sqlalchemy import inspect, text

    if "alert" not in inspect(engine).get_table_names():
        return
    with engine.begin() as conn:
        if "kind" in {c["name"] for c in inspect(conn).get_columns("alert")}:
            conn.execute(text("UPDATE alert SET kind = 'concern' WHERE kind <> 'concern'"))


def run_demo(
    engine: Engine, protocol: Protocol, calendar: WorkingCalendar, taxonomy: Taxonomy,
    settings: Settings, *, now: str | None, reset: bool, say: Callable[[str], None],
) -> None:
    if reset:
        _refuse_to_erase_a_live_council(engine)
        _forget_good_practice(engine)
        db.downgrade(engine, "base")
    db.upgrade(engine)
    with db.transaction(engine) as session:
        result = load_org(session, DEMO_ORG, protocol)
        existing = session.exec(select(func.count()).select_from(Alert)).one()
    say(f"Loaded the demo organisation: {result.council}, {result.people} people,"
        f" {result.children} children.")
    clock: Clock = clock_for(now, settings.tz)
    notifier = mail.notifier(settings)
    script = _script(protocol)
    if existing:
        say(f"The database already has {existing} alert(s); no demo alerts added"
            " (use `drp demo --reset` to start again).")
    else:
        today = clock.now().astimezone(settings.tz).date()
        for days_ago, _who, step in script:
            day = calendar.add(today, -days_ago) if days_ago else today
            at = datetime.combine(day, time(10, 0), tzinfo=settings.tz).astimezone(UTC)
            at = min(at, clock.now() - timedelta(minutes=1))
            with db.transaction(engine) as session:
                svc = AlertService(session, protocol=protocol, calendar=calendar,
                                   clock=FixedClock(at), tz=settings.tz, taxonomy=taxonomy,
                                   notifier=notifier)
                step(svc)
        report = mail.send(engine, settings, clock)
        where = settings.smtp_host or settings.mail_dir
        with db.transaction(engine) as session:
            added = session.exec(select(func.count()).select_from(Alert)).one()
        say(f"Added {added} demo alerts at different stages; e-mails: {report.summary()}"
            f" ({where}).")
    from ..keys import hash_password

    with db.transaction(engine) as session:
        hashed = hash_password(DEMO_PASSWORD)
        for person in session.exec(select(Person).where(col(Person.password_hash).is_(None))):
            person.password_hash = hashed  # the demo's people share one published password
            session.add(person)
        rows = session.exec(
            select(Person.username, Person.name, PersonRole.role)
            .join(PersonRole, col(PersonRole.person_id) == Person.id)
            .order_by(Person.username)
        ).all()
    say(f"Sign in to the web app (drp serve) as any of these people with the password"
        f" {DEMO_PASSWORD!r}, or act as them on the command line with --as USERNAME:")
    for username, name, role in rows:
        say(f"  {username:<12} {name:<22} {role}")
