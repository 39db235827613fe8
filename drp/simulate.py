"""`drp simulate`: a council's year of dispute resolution (1 April to 31 March, the councils'
reporting year), written through the service layer exactly as people and the scheduled flows
would have made it, to match the volumes and the stage funnel the council published in its IRO
annual report (Manchester 2020/21, Peterborough 2019/20, Cambridgeshire 2020/21).

The year is planned first: a council-sized organisation, then who raises which alert about
which child and when, and for each stage when it is answered, escalated (by the IRO, or by the
timescale run when a formal stage's response is late), put on hold, resolved, withdrawn or
referred. Which alerts climb how far is chosen so that the alerts entering each stage within
the year are the published counts. Then the year is played day by day: each working day's
timescale run at 07:00 (as the scheduled flow does: it resumes holds that have ended and
escalates overdue formal stages), then that day's commands, one transaction each, each as of
its own instant. The summary counts what was actually written, so `drp report disputes` over
the year agrees with it."""

from __future__ import annotations

import random
import re
import tempfile
import time as timer
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from . import db, timescales
from .alerts import ActionIn, AlertService
from .calendar import WorkingCalendar
from .clock import FixedClock
from .errors import BadValue, DrpError
from .models import Alert
from .notify import Notifier
from .org import load_org
from .protocol import OverduePolicy, Protocol, Role, Stage
from .themes import Taxonomy

# --- the profiles: what each council published, and the shape of the council ----------------

# Cambridgeshire 2020/21 (share of 506 escalations), used for every profile.
THEME_SHARES: dict[str, float] = {
    "accountability_record_keeping": 34,
    "permanence_planning": 22,
    "leaving_care": 13,
    "safeguarding": 11,
    "holistic_rights_needs": 10,
    "professional_network": 4,
    "funding": 3,
    "legal_status": 3,
}


@dataclass(frozen=True)
class ServiceShape:
    key: str
    name: str
    teams: int
    themes: tuple[str, ...] = ()  # themes whose alerts mostly concern this service's children


@dataclass(frozen=True)
class Profile:
    key: str
    council: str
    domain: str
    source: str
    children: int
    iros: int
    iro_managers: int
    social_workers_per_team: int
    services: tuple[ServiceShape, ...]
    raised: int
    formal_reached: tuple[int, ...]  # alerts entering formal stage 1, 2, ... within the year
    published: dict[str, Any]  # the annual report's own figures (formal stages by number)
    needs_formal_stages: int | None = None  # exactly this many formal stages (Manchester: 5)
    formal_open_at_end: int = 0  # formal alerts still open on 31 March ("outstanding")
    withdrawn_share: float = 0.02
    hold_share: float = 0.015
    auto_share: float = 0.3  # escalations between formal stages made by the timescale run
    cafcass_chance: float = 0.1  # chance of one referral to Cafcass in the year
    informal_no_response_share: float = 0.3  # of informal escalations: nobody answered
    late_informal_share: float = 0.12  # informal responses after the informal due date
    actions_share: float = 0.5  # formal responses that agree actions with dates


PROFILES: dict[str, Profile] = {
    "manchester": Profile(
        key="manchester", council="Manchester City Council (simulated)",
        domain="manchester.example",
        source="Manchester IRO annual report 2020/21, section 5.4",
        # 1,371 children looked after on 31 March 2021; 21.5 FTE IROs, average caseload 65.
        children=1371, iros=22, iro_managers=2, social_workers_per_team=6,
        services=(
            ServiceShape("north", "North locality", 6),
            ServiceShape("central", "Central locality", 6),
            ServiceShape("south", "South and Wythenshawe locality", 6),
            ServiceShape("permanence", "Permanence and adoption", 5, ("permanence_planning",)),
            ServiceShape("leaving-care", "Leaving care (Through Care)", 5, ("leaving_care",)),
            ServiceShape("disability", "Children with disabilities", 2),
        ),
        # Stage 1: 625 in the year (52 a month); stage 2: 153; stage 3: 32. Informal
        # discussion comes first ("the importance of resolving practice issues informally");
        # the deputy director (stage 4) and director (stage 5) counts are not published.
        raised=1000, formal_reached=(625, 153, 32, 6, 2),
        published={"reached": {1: 625, 2: 153, 3: 32}, "monthly_stage1": 52},
        needs_formal_stages=5, cafcass_chance=0.5,
    ),
    "peterborough": Profile(
        key="peterborough", council="Peterborough City Council (simulated)",
        domain="peterborough.example",
        source="Peterborough IRO annual report 2019/20, section 13.2",
        # 373 children in care; caseloads within 50-70.
        children=373, iros=6, iro_managers=1, social_workers_per_team=5,
        services=(
            ServiceShape("family-safeguarding", "Family safeguarding", 3),
            ServiceShape("children-in-care", "Children in care", 3, ("permanence_planning",)),
            ServiceShape("leaving-care", "Leaving care", 2, ("leaving_care",)),
        ),
        # 205 case alerts; 12 went to formal DRP, 3 of them to stage 3 (stage 2 is not
        # published: 5 assumed); "three are outstanding".
        raised=205, formal_reached=(12, 5, 3), formal_open_at_end=3,
        published={"raised": 205, "reached": {1: 12, 3: 3}, "formal_open_at_end": 3},
        hold_share=0.01,
    ),
    "cambridgeshire": Profile(
        key="cambridgeshire", council="Cambridgeshire County Council (simulated)",
        domain="cambridgeshire.example",
        source="Cambridgeshire IRO annual report 2020/21, sections 2.4-2.5",
        # 643 children in care; each IRO works with about 60.
        children=643, iros=11, iro_managers=1, social_workers_per_team=5,
        services=(
            ServiceShape("north", "North (Huntingdonshire and Fenland)", 4),
            ServiceShape("south", "South (Cambridge and South Cambridgeshire)", 4),
            ServiceShape("children-in-care", "Children in care", 3, ("permanence_planning",)),
            ServiceShape("disability", "Disabled children's service", 1),
            ServiceShape("leaving-care", "Leaving care", 2, ("leaving_care",)),
        ),
        # 506 escalations; 77% resolved as soon as received by the team managers (the first
        # stage). The formal stages are not published: about a fifth go formal.
        raised=506, formal_reached=(100, 22, 5, 1),
        published={"raised": 506, "resolved_first_stage_pct": 77},
    ),
}

# --- names and words ------------------------------------------------------------------------

FIRST = (
    "Aisha", "Alex", "Amara", "Amir", "Anna", "Ben", "Bilal", "Carys", "Chloe", "Chidi",
    "Claire", "Daniel", "David", "Deborah", "Emma", "Fatima", "Gemma", "Grace", "Hannah",
    "Harpreet", "Helen", "Ian", "Imran", "James", "Jane", "Joanne", "John", "Karen", "Kofi",
    "Laura", "Leah", "Lisa", "Mark", "Martin", "Mary", "Michael", "Mohammed", "Nadia", "Niamh",
    "Nicola", "Olu", "Paul", "Petra", "Priya", "Rachel", "Rhys", "Ruth", "Sam", "Sara",
    "Sarah", "Sean", "Simon", "Sophie", "Stephen", "Tariq", "Tom", "Yasmin", "Zoe",
)
LAST = (
    "Adams", "Ahmed", "Ali", "Bailey", "Baker", "Begum", "Bennett", "Brown", "Campbell",
    "Clarke", "Cooper", "Davies", "Edwards", "Evans", "Green", "Hall", "Harris", "Hughes",
    "Hussain", "Jackson", "James", "Jones", "Khan", "King", "Lee", "Lewis", "Martin",
    "Mensah", "Morgan", "Murphy", "Murray", "Nowak", "Obi", "Okafor", "O'Brien", "Owen",
    "Patel", "Phillips", "Price", "Roberts", "Robinson", "Shah", "Singh", "Smith", "Taylor",
    "Thomas", "Thompson", "Turner", "Walker", "Walsh", "Ward", "White", "Williams", "Wilson",
    "Wood", "Wright", "Young",
)

ALERT_TEXT: dict[str, tuple[tuple[str, ...], str, str]] = {
    # theme: (summaries, impact on the child, outcome wanted)
    "accountability_record_keeping": (
        ("No social work report shared before the child's review",
         "Care plan not updated after the last review",
         "Review recommendations not progressed within their timescales",
         "Child and family assessment out of date",
         "Case records not updated for three months"),
        "The review could not consider an up-to-date picture of the child's needs.",
        "The report or plan completed, shared with the IRO and on the child's file."),
    "permanence_planning": (
        ("Drift in the adoption plan: family finding not started",
         "Special guardianship assessment not started as agreed at review",
         "Long-term fostering match not presented to panel",
         "Plan for return home has no timescales"),
        "Delay in securing a permanent home for the child.",
        "A permanence plan with dates, tracked by the team manager."),
    "leaving_care": (
        ("Pathway plan not started at 16", "No personal adviser allocated at 17",
         "No accommodation plan for when the young person turns 18",
         "Referral to adult services not made"),
        "The young person's preparation for leaving care is at risk.",
        "The pathway plan and personal adviser in place before the next review."),
    "safeguarding": (
        ("Repeated missing episodes without return home interviews",
         "Risk of exploitation not assessed",
         "Strategy meeting not held after an allegation",
         "Safety plan not updated after an incident"),
        "The child may not be safe while the risk is not assessed.",
        "The risk assessed and a safety plan agreed with the network."),
    "holistic_rights_needs": (
        ("Initial health assessment overdue", "No school place for the child",
         "Sibling contact not arranged as agreed", "Advocacy not offered before the review",
         "Life story work not started"),
        "The child's health, education or relationships are not being met.",
        "The need met, with a date, and the child told what will happen."),
    "professional_network": (
        ("IRO not informed of a change of placement",
         "No response to the IRO's requests for an update",
         "Health and education not invited to the review"),
        "Decisions are made without the people who know the child.",
        "The IRO informed and the network involved before decisions are made."),
    "funding": (
        ("Funding for therapy not agreed", "Placement funding decision outstanding",
         "Support package funding not approved"),
        "The child is waiting for support the plan says they need.",
        "A funding decision, recorded and shared with the IRO."),
    "legal_status": (
        ("Section 20 drift: no plan for proceedings",
         "Application to discharge the care order not made",
         "Placement order not revoked although adoption is no longer the plan"),
        "The child's legal status does not match their plan.",
        "Legal planning meeting held and the application made or the plan confirmed."),
}
GENERIC_TEXT = (("Care plan not progressed as agreed at review",),
                "The child's plan is drifting.", "The plan progressed, with dates.")

RESPONSES = (
    "Agreed; the social worker will complete it this week and share it with the IRO.",
    "Discussed with the team manager; allocated and booked in.",
    "Accepted: the plan has been updated and a date set.",
    "The team will address this by the next supervision; the IRO will be updated.",
)
FORMAL_RESPONSES = (
    "Management oversight added: the work is allocated with a completion date.",
    "Accepted; the actions below are agreed with the team and will be tracked.",
    "Reviewed the case with the team manager; a plan with dates is in place.",
)
ESCALATE_NO_RESPONSE = "No response within the stage's timescale"
ESCALATE_REASONS = (
    "The response does not set a date for the work.",
    "The agreed action was not completed; the drift continues.",
    "The response does not address the impact on the child.",
)
OUTCOMES = (
    "Completed and shared with the IRO.",
    "Plan updated; the IRO is satisfied with the response.",
    "Actions agreed and under way; resolved.",
    "The issue has been addressed for the child.",
)
WITHDRAW_REASONS = (
    "The plan changed at the child's review; the alert no longer applies.",
    "Raised on the wrong child's record.",
    "Superseded by a new alert covering the same issue.",
)
HOLD_REASONS = (
    "Awaiting the court hearing listed for the case.",
    "Awaiting the outcome of the placement panel.",
    "Awaiting the strategy meeting's decision.",
)
ACTION_TEXT = (
    "Share the completed report with the IRO",
    "Update the care plan and upload it to the child's file",
    "Confirm the date with the IRO and the child",
)

# Seasonal variation in raising: fewer in August (summer holidays) and December.
MONTH_WEIGHT = {4: 0.95, 5: 1.0, 6: 1.05, 7: 1.05, 8: 0.8, 9: 1.05, 10: 1.1, 11: 1.1,
                12: 0.8, 1: 1.05, 2: 1.0, 3: 1.05}
WEEKDAY_WEIGHT = (1.0, 1.1, 1.1, 1.05, 0.8)
RUN_AT = time(7, 0)  # the morning timescale run


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


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    at: datetime  # UTC
    alert: int  # index into Plan.alerts
    kind: str  # raise, respond, escalate, hold, resolve, withdraw, refer, action_done
    actor: str
    text: str = ""
    until: date | None = None
    actions: tuple[tuple[str, date], ...] = ()
    action_no: int = 0


@dataclass
class AlertPlan:
    index: int
    child: ChildLine
    theme: str
    summary: str
    raised_at: datetime
    depth: int = 0  # index of the last stage it reaches
    outcome: str = "resolved"  # resolved, withdrawn, referred, open
    hold: bool = False
    steps: list[Step] = field(default_factory=list)
    autos: list[date] = field(default_factory=list)  # days the timescale run escalates it
    entered: list[tuple[datetime, str]] = field(default_factory=list)  # within the year


@dataclass
class Plan:
    profile: Profile
    start: date
    end: date
    org: Organisation
    alerts: list[AlertPlan]
    targets: dict[str, int]  # stage key -> alerts to enter it within the year
    shares: dict[str, float]

    def expected(self, keys: tuple[str, ...], cafcass: str) -> dict[str, int]:
        """Alerts entering each stage within the year, as planned."""
        reached = dict.fromkeys((*keys, cafcass), 0)
        for a in self.alerts:
            for _at, stage in a.entered:
                reached[stage] += 1
        return reached


class _Planner:
    """Turns a profile into a year of dated steps. Each alert's behaviour at each stage comes
    from a random generator of its own (seeded from the run's seed, the alert and the stage),
    so an alert's timeline up to a stage does not depend on how far it later climbs."""

    def __init__(self, profile: Profile, protocol: Protocol, calendar: WorkingCalendar,
                 tz: ZoneInfo, start: date, end: date, seed: int) -> None:
        self.p, self.protocol, self.cal, self.tz = profile, protocol, calendar, tz
        self.start, self.end, self.seed = start, end, seed
        self.stages = protocol.stages
        self.finish = self.instant(end + timedelta(days=1), time.min)

    def instant(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.tz).astimezone(UTC)

    def local_day(self, instant: datetime) -> date:
        return instant.astimezone(self.tz).date()

    def after(self, r: random.Random, cursor: datetime, day: date) -> datetime:
        """An instant on `day`, in working hours, after `cursor`."""
        if day <= self.local_day(cursor):
            today = self.local_day(cursor)
            soon = max(cursor + timedelta(minutes=r.randint(10, 90)),
                       self.instant(today, time(8, 30)) + timedelta(minutes=r.randint(0, 60)))
            return max(min(soon, self.instant(today, time(20, 0))),
                       cursor + timedelta(minutes=1))
        return self.instant(day, time(8, 30)) + timedelta(minutes=r.randint(0, 480))

    def run_instant(self, day: date) -> datetime:
        return self.instant(day, RUN_AT)

    def rng(self, alert: int, stage: int, what: str) -> random.Random:
        return random.Random(f"{self.seed}/{self.p.key}/{alert}/{stage}/{what}")  # noqa: S311

    def responder(self, r: random.Random, a: AlertPlan, stage: Stage) -> str:
        if Role.social_worker in stage.also_respond and r.random() < 0.5:
            return a.child.posts[Role.social_worker.value]
        return a.child.posts[stage.responsible.value]

    @staticmethod
    def offset(r: random.Random, window: int) -> int:
        """Working days to a response: soon more often than late."""
        return r.choices(range(window + 1), weights=[window + 1 - j for j in range(window + 1)])[0]

    def stage_steps(self, a: AlertPlan, k: int, entry: datetime, exit_: str,
                    hold: bool = False) -> tuple[list[Step], datetime | None, date | None]:
        """What happens at stage `k`, entered at `entry`, until the alert leaves it (exit_:
        escalate, resolved, withdrawn, referred or open). Returns the steps, the instant it
        enters the next stage (when escalating) and the day the timescale run escalates it
        (when it does)."""
        stage = self.stages[k]
        r = self.rng(a.index, k, exit_)
        cal, iro = self.cal, a.child.iro
        steps: list[Step] = []
        e = self.local_day(entry)
        due = cal.add(e, stage.timescale_working_days)
        cursor = entry
        answer_from = e
        if hold:
            h = cal.add(e, r.randint(0, stage.timescale_working_days - 1))
            length = r.randint(5, 15)
            until = cal.add(h, length)
            cursor = self.after(r, cursor, h)
            steps.append(Step(cursor, a.index, "hold", iro, r.choice(HOLD_REASONS), until=until))
            cursor = self.run_instant(until)  # the timescale run resumes it that morning
            due = cal.add(due, length)  # the held working days do not count
            answer_from = until
        window = cal.between(answer_from, due)
        policy = stage.when_overdue
        late_ok = policy == OverduePolicy.remind_iro

        def respond_day() -> date:
            if late_ok and r.random() < self.p.late_informal_share:
                return cal.add(due, r.randint(1, 3))
            return cal.add(answer_from, self.offset(r, window))

        def respond(day: date, with_actions: bool) -> None:
            nonlocal cursor
            cursor = self.after(r, cursor, day)
            actor = self.responder(r, a, stage)
            actions: list[tuple[str, date]] = []
            if with_actions and r.random() < self.p.actions_share:
                for _ in range(r.choice((1, 1, 2))):
                    actions.append((r.choice(ACTION_TEXT), cal.add(day, r.randint(3, 12))))
            text = r.choice(FORMAL_RESPONSES if stage.formal else RESPONSES)
            steps.append(Step(cursor, a.index, "respond", actor, text, actions=tuple(actions)))
            # Actions are agreed only at the last stage an alert reaches: numbered from 1.
            for no, (_text, action_due) in enumerate(actions, start=1):
                roll = r.random()
                if roll < 0.8:
                    when = cal.add(day, r.randint(1, cal.between(day, action_due)))
                elif roll < 0.9:
                    when = cal.add(action_due, r.randint(1, 5))
                else:
                    continue  # never marked done
                a_at = self.instant(when, time(8, 30)) + timedelta(minutes=r.randint(0, 480))
                steps.append(Step(a_at, a.index, "action_done", actor, "Done.", action_no=no))

        if exit_ == "escalate":
            if policy == OverduePolicy.escalate and not hold and r.random() < self.p.auto_share:
                day = cal.add(due, 1)  # no response: the run escalates the next working day
                return steps, self.run_instant(day), day
            if late_ok and r.random() < self.p.informal_no_response_share:
                day = cal.add(due, r.randint(1, 2))
                cursor = self.after(r, cursor, day)
                steps.append(Step(cursor, a.index, "escalate", iro,
                                  f"{ESCALATE_NO_RESPONSE} (due {due.isoformat()})."))
                return steps, cursor, None
            day = respond_day()
            respond(day, with_actions=False)
            cursor = self.after(r, cursor, cal.add(day, r.choice((0, 0, 1, 1, 2, 3))))
            steps.append(Step(cursor, a.index, "escalate", iro, r.choice(ESCALATE_REASONS)))
            return steps, cursor, None
        if exit_ == "withdrawn":
            day = cal.add(answer_from, r.randint(0, window))
            cursor = self.after(r, cursor, day)
            steps.append(Step(cursor, a.index, "withdraw", iro, r.choice(WITHDRAW_REASONS)))
            return steps, None, None
        day = respond_day()
        respond(day, with_actions=stage.formal)
        if exit_ == "resolved":
            cursor = self.after(r, cursor, cal.add(day, r.choice((0, 0, 0, 1, 1, 2, 3))))
            steps.append(Step(cursor, a.index, "resolve", iro, r.choice(OUTCOMES)))
        elif exit_ == "referred":
            cursor = self.after(r, cursor, cal.add(day, r.randint(3, 8)))
            steps.append(Step(cursor, a.index, "refer", iro,
                              "The council's response does not protect the child's plan;"
                              " independent legal advice taken and the IRO manager consulted."))
        return steps, None, None

    def entries(self, a: AlertPlan, depth: int) -> list[datetime]:
        """When the alert would enter each stage up to `depth`, escalating at each."""
        out = [a.raised_at]
        for k in range(depth):
            _steps, nxt, _auto = self.stage_steps(a, k, out[-1], "escalate")
            assert nxt is not None
            out.append(nxt)
        return out

    def build(self, a: AlertPlan) -> None:
        """The alert's steps and automatic escalations, cut at the end of the year."""
        steps = [Step(a.raised_at, a.index, "raise", a.child.iro, a.summary)]
        autos: list[date] = []
        entry = a.raised_at
        for k in range(a.depth + 1):
            last = k == a.depth
            more, nxt, auto = self.stage_steps(a, k, entry, a.outcome if last else "escalate",
                                               hold=a.hold and last)
            steps += more
            if auto is not None:
                autos.append(auto)
            if nxt is not None:
                entry = nxt
        # Steps and escalations on one timeline, cut at 31 March: what is left stays open.
        timeline = sorted([(s.at, 1, s) for s in steps]
                          + [(self.run_instant(d), 0, d) for d in autos],
                          key=lambda item: (item[0], item[1]))
        keys, stage = self.protocol.keys, 0
        a.steps, a.autos, a.entered = [], [], []
        for at, _order, item in timeline:
            if at >= self.finish:
                break
            if isinstance(item, Step):
                a.steps.append(item)
                if item.kind == "raise":
                    a.entered.append((at, keys[0]))
                elif item.kind == "escalate":
                    stage += 1
                    a.entered.append((at, keys[stage]))
                elif item.kind == "refer":
                    a.entered.append((at, self.protocol.cafcass.key))
            else:
                a.autos.append(item)
                stage += 1
                a.entered.append((at, keys[stage]))


def _allocate(total: int, shares: dict[str, float]) -> list[str]:
    """`total` items in the given shares, exactly (largest remainder)."""
    whole = sum(shares.values())
    raw = {k: total * v / whole for k, v in shares.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[:total - sum(
            counts.values())]:
        counts[k] += 1
    return [k for k, n in counts.items() for _ in range(n)]


def _working_days(calendar: WorkingCalendar, start: date, end: date) -> list[date]:
    days, day = [], start
    while day <= end:
        if calendar.is_working_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def _check_protocol(profile: Profile, protocol: Protocol) -> list[Stage]:
    formal = [s for s in protocol.stages if s.formal]
    if protocol.stages[0].formal:
        raise BadValue(
            f"the simulation raises alerts at informal resolution first, but the protocol in"
            f" force ({protocol.name!r}) starts at a formal stage ({protocol.stages[0].key});"
            " use a protocol with an informal first stage (config/protocol.yaml)")
    if profile.needs_formal_stages is not None and len(formal) != profile.needs_formal_stages:
        raise BadValue(
            f"the {profile.key} profile follows Manchester's six-stage process (five formal"
            f" stages, then Cafcass), but the protocol in force ({protocol.name!r}) has"
            f" {len(formal)} formal stage(s): set DRP_PROTOCOL=config/protocol.manchester.yaml"
            " and run it again")
    needed = max((i + 1 for i, n in enumerate(profile.formal_reached) if n), default=0)
    if len(formal) < needed:
        raise BadValue(
            f"the {profile.key} profile needs {needed} formal stages, but the protocol in force"
            f" ({protocol.name!r}) has {len(formal)}; use config/protocol.yaml")
    return formal


def plan_year(protocol: Protocol, calendar: WorkingCalendar, taxonomy: Taxonomy, tz: ZoneInfo,
              *, year: int, profile: str, seed: int = 2025, scale: float = 1.0) -> Plan:
    """The year, planned: the organisation and every alert's dated steps. Writes nothing."""
    prof = _check(profile, protocol, year, scale)
    rng = random.Random(f"{seed}/{prof.key}")  # noqa: S311 - a simulation, not security
    start, end = date(year, 4, 1), date(year + 1, 3, 31)
    org = build_org(prof, rng)
    planner = _Planner(prof, protocol, calendar, tz, start, end, seed)
    keys = protocol.keys

    # Themes: Cambridgeshire's shares where the taxonomy has those themes.
    known = {k: v for k, v in THEME_SHARES.items() if k in taxonomy.keys}
    shares = known or dict.fromkeys(taxonomy.keys, 1.0)
    raised = max(1, round(prof.raised * scale))
    themes = _allocate(raised, shares)
    rng.shuffle(themes)

    # Raising days: each month's share by its working days and the season, then days within
    # the month weighted by weekday.
    days = _working_days(calendar, start, end)
    months: dict[str, list[date]] = {}
    for d in days:
        months.setdefault(f"{d:%Y-%m}", []).append(d)
    per_month = Counter(_allocate(raised, {m: MONTH_WEIGHT[ds[0].month] * len(ds)
                                           for m, ds in months.items()}))
    when = sorted(d for m, ds in months.items() for d in rng.choices(
        ds, weights=[WEEKDAY_WEIGHT[x.weekday()] for x in ds], k=per_month[m]))
    by_theme = {t: [i for s in org.by_service if t in _shape(prof, s).themes
                    for i in org.by_service[s]] for t in shares}
    alerts: list[AlertPlan] = []
    for i, (day, theme) in enumerate(zip(when, themes, strict=True)):
        pool = by_theme.get(theme) or []
        child = org.children[rng.choice(pool) if pool and rng.random() < 0.7
                             else rng.randrange(len(org.children))]
        summaries, _impact, _wanted = ALERT_TEXT.get(theme, GENERIC_TEXT)
        at = planner.instant(day, time(8, 30)) + timedelta(minutes=rng.randint(0, 480))
        alerts.append(AlertPlan(i, child, theme, rng.choice(summaries), at))
    alerts.sort(key=lambda a: a.raised_at)
    for i, a in enumerate(alerts):
        a.index = i

    # How far each alert climbs: the deepest stages first, each among the alerts that would
    # enter it before the year ends, so the counts entering each stage are the targets.
    formal_targets = [round(n * scale) for n in prof.formal_reached]
    depth_max = max((i + 1 for i, n in enumerate(formal_targets) if n), default=0)
    targets = {keys[0]: raised, **{keys[k]: formal_targets[k - 1]
                                   for k in range(1, depth_max + 1)}}
    entries = [planner.entries(a, depth_max) for a in alerts]
    for k in range(depth_max, 0, -1):
        want = formal_targets[k - 1]
        have = sum(1 for a in alerts if a.depth >= k)
        eligible = [a for a in alerts if a.depth == 0 and entries[a.index][k] < planner.finish]
        for a in rng.sample(eligible, max(0, min(want - have, len(eligible)))):
            a.depth = k

    # Outcomes at the last stage each reaches.
    free = list(alerts)
    if depth_max and rng.random() < prof.cafcass_chance:
        deepest = [a for a in alerts if a.depth == max(x.depth for x in alerts)]
        chosen = rng.choice(deepest)
        chosen.outcome = "referred"
        free.remove(chosen)
    if prof.formal_open_at_end:
        formal = sorted((a for a in free if a.depth >= 1),
                        key=lambda a: entries[a.index][a.depth], reverse=True)
        for a in formal[:round(prof.formal_open_at_end * scale)]:
            a.outcome = "open"
            free.remove(a)
    for a in rng.sample(free, round(prof.withdrawn_share * len(alerts))):
        a.outcome = "withdrawn"
        free.remove(a)
    for a in rng.sample(free, round(prof.hold_share * len(alerts))):
        a.hold = True
    for a in alerts:
        planner.build(a)
    return Plan(prof, start, end, org, alerts, targets, shares)


def _check(key: str, protocol: Protocol, year: int, scale: float) -> Profile:
    """The profile, once the arguments and the protocol in force suit it."""
    if key not in PROFILES:
        raise BadValue(f"there is no profile {key!r}; choose one of {', '.join(PROFILES)}")
    if not 2000 <= year <= 2099:
        raise BadValue(f"--year {year} is not a reporting year; give e.g. 2025 for 2025/26")
    if not 0 < scale <= 10:
        raise BadValue(f"scale {scale} is out of range; give a number above 0, at most 10")
    _check_protocol(PROFILES[key], protocol)
    return PROFILES[key]


def _shape(profile: Profile, service: str) -> ServiceShape:
    return next(s for s in profile.services if s.key == service)


# --- playing the year -------------------------------------------------------------------------


@contextmanager
def _bulk_writes(engine: Engine) -> Iterator[None]:
    """On SQLite, commit without waiting for the disk at every transaction (WAL with
    synchronous=NORMAL: never corrupt, at worst the last commits lost in a power cut) while
    the simulation writes its thousands of small transactions; the pool is then emptied, so
    later connections have the usual setting again."""
    if engine.dialect.name != "sqlite":
        yield
        return

    def fast(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "checkout", fast)
    try:
        yield
    finally:
        event.remove(engine, "checkout", fast)
        engine.dispose()


@dataclass
class _Tally:
    keys: tuple[str, ...]
    cafcass: str
    tz: ZoneInfo
    reached: Counter[str] = field(default_factory=Counter)
    closed: Counter[str] = field(default_factory=Counter)
    closed_at: dict[str, Counter[str]] = field(default_factory=dict)
    themes: Counter[str] = field(default_factory=Counter)
    monthly: dict[str, Counter[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def month(self, at: datetime) -> Counter[str]:
        return self.monthly.setdefault(at.astimezone(self.tz).strftime("%Y-%m"), Counter())

    def enter(self, stage: str, at: datetime) -> None:
        self.reached[stage] += 1
        self.month(at)[stage] += 1

    def close(self, kind: str, stage: str, at: datetime) -> None:
        self.closed[kind] += 1
        self.closed_at.setdefault(kind, Counter())[stage] += 1
        self.month(at)[kind] += 1


def simulate(engine: Engine, protocol: Protocol, calendar: WorkingCalendar,
             taxonomy: Taxonomy, tz: ZoneInfo, *, year: int, profile: str, seed: int = 2025,
             notifier: Notifier | None = None, say: Callable[[str], None] = print,
             scale: float = 1.0,
             after_run: Callable[[date, datetime], None] | None = None) -> dict[str, Any]:
    """Simulate a council's reporting year (1 April `year` to 31 March `year`+1) into an empty
    database; returns (and says) what was written. `scale` multiplies the alert volumes (the
    organisation stays council-sized). `after_run` is called after each day's timescale run,
    before the day's people act."""
    began = timer.perf_counter()
    _check(profile, protocol, year, scale)
    db.require_schema(engine)
    with Session(engine) as session:
        existing = session.exec(select(func.count()).select_from(Alert)).one()
    if existing:
        raise BadValue(
            f"the database already has {existing} alert(s); a simulated year is written only"
            " into a database without alerts (its events are never deleted): use a new"
            " database, e.g. DRP_DATABASE_URL=sqlite:///./var/simulated.db, and run `drp init`"
            " first")
    plan = plan_year(protocol, calendar, taxonomy, tz, year=year, profile=profile, seed=seed,
                     scale=scale)
    prof = plan.profile
    keys, cafcass = protocol.keys, protocol.cafcass.key
    with tempfile.TemporaryDirectory(prefix="drp-simulate-") as tmp:
        path = Path(tmp) / f"{prof.key}-org.yaml"
        path.write_text(yaml.safe_dump(plan.org.document, sort_keys=False), encoding="utf-8")
        with db.transaction(engine) as session:
            load_org(session, path, protocol)
    counts = plan.org.counts()
    say(f"Simulating {prof.council}, {plan.start:%-d %B %Y} to {plan.end:%-d %B %Y}"
        f" (profile {prof.key}, seed {seed}{'' if scale == 1 else f', scale {scale}'}):"
        f" {counts['services']} services, {counts['teams']} teams, {counts['iros']} IROs,"
        f" {counts['children']} children; {len(plan.alerts)} alerts to raise.")

    tally = _Tally(keys, cafcass, tz)
    ids: dict[int, int] = {}  # plan index -> alert id
    by_id: dict[int, int] = {}
    stage_of: dict[int, int] = {}  # plan index -> stage index now
    derailed: set[int] = set()
    problems: list[str] = []
    steps_by_day: dict[date, list[Step]] = {}
    for a in plan.alerts:
        for s in a.steps:
            steps_by_day.setdefault(s.at.astimezone(tz).date(), []).append(s)
    autos_by_day: dict[date, set[int]] = {}
    for a in plan.alerts:
        for d in a.autos:
            autos_by_day.setdefault(d, set()).add(a.index)

    def service(session: Session, at: datetime) -> AlertService:
        return AlertService(session, protocol=protocol, calendar=calendar,
                            clock=FixedClock(at), tz=tz, taxonomy=taxonomy, notifier=notifier)

    def services_at(at: datetime) -> Callable[[Session], AlertService]:
        return lambda session: service(session, at)

    def execute(s: Step) -> None:
        a = plan.alerts[s.alert]
        with db.transaction(engine) as session:
            svc = service(session, s.at)
            if s.kind == "raise":
                _summaries, impact, wanted = ALERT_TEXT.get(a.theme, GENERIC_TEXT)
                alert = svc.raise_alert(s.actor, a.child.ref, s.text, impact=impact,
                                        outcome_wanted=wanted, theme=a.theme)
                assert alert.id is not None
                ids[a.index], by_id[alert.id] = alert.id, a.index
                return
            aid = ids[a.index]
            if s.kind == "respond":
                svc.respond(aid, s.actor, s.text, [ActionIn(t, due) for t, due in s.actions])
            elif s.kind == "escalate":
                svc.escalate(aid, s.actor, s.text)
            elif s.kind == "hold":
                svc.hold(aid, s.actor, s.text, until=s.until)
            elif s.kind == "resolve":
                svc.resolve(aid, s.actor, s.text)
            elif s.kind == "withdraw":
                svc.withdraw(aid, s.actor, s.text)
            elif s.kind == "refer":
                svc.refer(aid, s.actor, s.text, legal_advice="The council's legal services")
            elif s.kind == "action_done":
                svc.action_done(aid, s.action_no, s.actor, s.text)
            else:  # pragma: no cover - the planner writes only the kinds above
                raise AssertionError(s.kind)

    def record(s: Step) -> None:
        a = plan.alerts[s.alert]
        tally.counts[s.kind] += 1
        if s.kind == "raise":
            stage_of[a.index] = 0
            tally.enter(keys[0], s.at)
            tally.themes[a.theme] += 1
            tally.month(s.at)["raised"] += 1
        elif s.kind == "escalate":
            stage_of[a.index] += 1
            tally.enter(keys[stage_of[a.index]], s.at)
        elif s.kind in ("resolve", "withdraw", "refer"):
            kind = {"resolve": "resolved", "withdraw": "withdrawn", "refer": "referred"}[s.kind]
            tally.close(kind, keys[stage_of[a.index]], s.at)
            if s.kind == "refer":
                tally.enter(cafcass, s.at)

    runs = 0
    day = plan.start
    with _bulk_writes(engine):
        while day <= plan.end:
            if calendar.is_working_day(day):
                at = datetime.combine(day, RUN_AT, tzinfo=tz).astimezone(UTC)
                result = timescales.run(engine, services_at(at), protocol, calendar, day)
                runs += 1
                problems += [f"timescale run {day.isoformat()}: {p}" for p in result.problems]
                expected = autos_by_day.get(day, set())
                for aid in result.escalated:
                    idx = by_id[aid]
                    if idx not in expected:
                        problems.append(f"{day.isoformat()}: alert {aid} escalated by the"
                                        " timescale run, which was not planned")
                    stage_of[idx] += 1
                    tally.enter(keys[stage_of[idx]], at)
                    tally.counts["auto_escalated"] += 1
                missed = expected - {by_id[aid] for aid in result.escalated} - derailed
                problems += [f"{day.isoformat()}: alert {ids.get(i)} was not escalated by the"
                             " timescale run as planned" for i in sorted(missed)]
                tally.counts["resumed"] += len(result.resumed)
                tally.counts["reminders"] += len(result.reminded)
                tally.counts["overdue_notices"] += len(result.overdue_notices)
                tally.counts["actions_overdue"] += len(result.actions_overdue)
                if after_run is not None:  # e.g. the scheduled flows, in a soak test
                    after_run(day, at)
            for s in sorted(steps_by_day.get(day, []), key=lambda s: (s.at, s.alert)):
                if s.alert in derailed:
                    continue
                try:
                    execute(s)
                except DrpError as exc:
                    derailed.add(s.alert)
                    problems.append(f"{s.at.astimezone(tz):%Y-%m-%d %H:%M} {s.kind} (alert"
                                    f" {ids.get(s.alert)}): {exc.message}")
                    continue
                record(s)
            day += timedelta(days=1)
            if day.day == 1:  # a month done
                month = day - timedelta(days=1)
                m = tally.monthly.get(f"{month:%Y-%m}", Counter())
                say(f"  {month:%B %Y}: {m['raised']} raised, "
                    + ", ".join(f"{m[s]} entered {s}" for s in keys[1:4])
                    + f"; {m['resolved']} resolved")

    summary = _summary(plan, protocol, tally, runs, problems, seed, scale, year)
    summary["organisation"] = counts
    _say_summary(summary, say, timer.perf_counter() - began)
    return summary


def _summary(plan: Plan, protocol: Protocol, tally: _Tally, runs: int, problems: list[str],
             seed: int, scale: float, year: int) -> dict[str, Any]:
    keys, cafcass = protocol.keys, protocol.cafcass.key
    formal = [s.key for s in protocol.stages if s.formal]
    prof = plan.profile
    raised = tally.reached[keys[0]]
    closed = {k: tally.closed[k] for k in ("resolved", "withdrawn", "referred")}
    published: dict[str, Any] = {}
    for k, v in prof.published.items():
        if k == "reached":
            published[k] = {formal[n - 1]: count for n, count in v.items()}
        else:
            published[k] = v
    months = []
    first = date(year, 4, 1)
    for i in range(12):
        y, m = divmod(first.month - 1 + i, 12)
        months.append(f"{first.year + y}-{m + 1:02d}")
    monthly = {}
    for month in months:
        c = tally.monthly.get(month, Counter())
        monthly[month] = {"raised": c["raised"], "reached": {s: c[s] for s in (*keys, cafcass)},
                          **{k: c[k] for k in ("resolved", "withdrawn", "referred")}}
    resolved_at = tally.closed_at.get("resolved", Counter())
    return {
        "profile": prof.key, "council": prof.council, "source": prof.source,
        "year": f"{year}/{(year + 1) % 100:02d}",
        "period": {"from": plan.start.isoformat(), "to": plan.end.isoformat()},
        "protocol": protocol.name, "seed": seed, "scale": scale,
        "published": published,
        "targets": plan.targets,
        "theme_shares": plan.shares,
        "raised": raised,
        "reached": {s: tally.reached[s] for s in (*keys, cafcass)},
        "reached_monthly_average": {s: round(tally.reached[s] / 12, 1)
                                    for s in (*keys, cafcass)},
        "closed": closed,
        "resolved_by_stage": {s: resolved_at[s] for s in keys if resolved_at[s]},
        "withdrawn_by_stage": dict(tally.closed_at.get("withdrawn", Counter())),
        "resolved_at_first_stage_pct": round(100 * resolved_at[keys[0]] / raised, 1)
        if raised else None,
        "outstanding_at_end": raised - sum(closed.values()),
        "automatic_escalations": tally.counts["auto_escalated"],
        "holds": tally.counts["hold"],
        "holds_resumed": tally.counts["resumed"],
        "responses": tally.counts["respond"],
        "actions_done": tally.counts["action_done"],
        "reminders": tally.counts["reminders"],
        "overdue_notices": tally.counts["overdue_notices"],
        "themes": dict(tally.themes.most_common()),
        "monthly": monthly,
        "timescale_runs": runs,
        "commands": sum(tally.counts[k] for k in (
            "raise", "respond", "escalate", "hold", "resolve", "withdraw", "refer",
            "action_done")),
        "problems": problems,
    }


def _say_summary(summary: dict[str, Any], say: Callable[[str], None], seconds: float) -> None:
    published = summary["published"]
    reached = summary["reached"]
    pub = published.get("reached", {})

    def stage(s: str) -> str:
        note = f" (published {pub[s]})" if s in pub else ""
        return f"{s} {reached[s]}{note}"

    raised_note = f" (published {published['raised']})" if "raised" in published else ""
    closed = summary["closed"]
    say(f"{summary['council']}, {summary['year']}: {summary['raised']} alerts raised"
        f"{raised_note}; reached: {', '.join(stage(s) for s in reached)}.")
    say(f"Closed: {closed['resolved']} resolved ({summary['resolved_at_first_stage_pct']}% of"
        f" those raised at the first stage), {closed['withdrawn']} withdrawn,"
        f" {closed['referred']} referred to Cafcass; {summary['outstanding_at_end']} open at"
        f" {summary['period']['to']}. Automatic escalations {summary['automatic_escalations']},"
        f" holds {summary['holds']}, timescale runs {summary['timescale_runs']},"
        f" {summary['commands']} commands in {seconds:.0f} s.")
    first_formal = next((s for s in reached if s in pub), None)
    if first_formal:
        say(f"{first_formal}: {summary['reached_monthly_average'][first_formal]} a month.")
    for p in summary["problems"][:10]:
        say(f"problem: {p}")
