"""Property-based tests of the service layer: a hypothesis state machine drives random
sequences of commands, by random people, at random (forward-moving) instants, against a real
SQLite database (a fresh one per example), and checks the ladder's invariants by reading the
database after every step.

Every command must either succeed or be refused with a DrpError that changes nothing; any other
exception is a bug and propagates."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)
from sqlalchemy import inspect, text
from sqlmodel import Session, col, select

from drp import db
from drp.alerts import ActionIn, AlertService
from drp.calendar import WorkingCalendar
from drp.classifier import Suggestion
from drp.clock import FixedClock, local_date
from drp.errors import BadValue, DrpError, InvalidTransition, NotFound
from drp.ladder.access import SYSTEM, Line
from drp.ladder.protocol import load_protocol
from drp.models import Action, Alert, Child, Event, Person, Referral
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy

from .conftest import DATA, LONDON
from .support import databases, workdays

ORG_FILE = DATA / "org.yaml"
PROTOCOL = load_protocol(CONFIG_DIR / "protocol.yaml")
TAXONOMY = load_taxonomy(CONFIG_DIR / "themes.yaml")
CALENDAR = WorkingCalendar()
KEYS = PROTOCOL.keys
CAFCASS = PROTOCOL.cafcass.key
STATUSES = ("open", "resolved", "withdrawn")
CLOSED = ("resolved", "withdrawn")
RESPONSES = ("accepted", "declined", "proceedings", "closed")

_ORG = yaml.safe_load(ORG_FILE.read_text(encoding="utf-8"))
ORG_PEOPLE: list[str] = [p["username"] for p in _ORG["people"]]
IRO_SIDE: list[str] = [
    p["username"] for p in _ORG["people"] if {"iro", "iro_manager"} & set(p["roles"])
]
CHILDREN: list[str] = [c["ref"] for c in _ORG["children"]]
TEAMS = {c["team"] for c in _ORG["children"]}
IRO_OF: dict[str, str] = {c["ref"]: c["iro"] for c in _ORG["children"]}
NOBODY = "nobody.zed"  # not in the organisation file
EVERYONE = [*ORG_PEOPLE, NOBODY, SYSTEM]
MISSING_ALERT = 10**6
# What a command may write: every table but the organisation's and the schema version. Of the
# append-only logs, a snapshot keeps only the number of rows and the last id.
ORG_TABLES = {
    "alembic_version", "council", "person", "person_role", "service", "team", "team_member",
    "child",
}
APPEND_ONLY = {"event", "access_log"}

# Monday 15 March 2027, 09:00 in London: runs cross Easter (Good Friday 26 March, Easter
# Monday 29 March), the clocks going forward (28 March) and the May bank holidays.
START = datetime(2027, 3, 15, 9, 0, tzinfo=LONDON).astimezone(UTC)

# --- strategies ------------------------------------------------------------------------------

# How the clock moves before a command: (days on, local time). (0, None) leaves it where it is;
# (n, None) moves it on n whole days; (n, t) moves it to the first time t in London at least n
# days on and not before now: so from a few minutes to several days, crossing weekends and
# bank holidays, and often at the edges of the day (around midnight the UTC and London dates
# differ in summer). Each step names its time of day, so removing an earlier step (shrinking)
# does not move the later ones off the edge where they fail.
Step = tuple[int, time | None]
EDGES = [time(0, 0), time(0, 30), time(9, 0), time(17, 30), time(23, 59)]
steps: st.SearchStrategy[Step] = st.tuples(
    st.sampled_from([0, 0, 0, 1, 1, 2, 3, 4, 6]),
    st.one_of(
        st.none(),
        st.sampled_from(EDGES),
        st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60)),
    ),
)

# Anyone at all, but (so that enough commands get through) the people who may act on the alert
# more often than chance. The placeholders are replaced, as the rule runs, by the alert's IRO
# (the child's IRO, for raising) and by whoever is responsible at the alert's stage.
THE_IRO = "<the IRO>"
THE_RESPONSIBLE = "<the responsible>"
people = st.sampled_from([*EVERYONE, *[THE_IRO] * 8, *IRO_SIDE])  # the IRO side's commands
# Raising and closing get through less often: fewer alerts, living longer, more done to each.
raisers = closers = st.sampled_from([*EVERYONE, THE_IRO, THE_IRO])
responders = st.sampled_from([*EVERYONE, *[THE_RESPONSIBLE] * 8, THE_IRO])
anyone = st.sampled_from(EVERYONE)
# Referring and recording Cafcass's response: the IRO's alone, and once per alert, so tried by
# the IRO most of the time (or a referral would seldom be made before the alert closes).
the_iro_mostly = st.sampled_from([*EVERYONE, *[THE_IRO] * 30])

GOOD = "Care plan not shared"
words = st.sampled_from([*[GOOD] * 8, "No response", "x", "   ", ""])
day_offsets = st.integers(-3, 30)  # days from today (local): past, today, weekends, holidays
# A date a person gives: mostly days from today, sometimes far outside what drp accepts
# (9999-12-31 is a common "no end"; 2101 is past the last date).
BEYOND = (date(9999, 12, 31), date(2101, 1, 1), date(1999, 12, 31))
given_days = st.one_of(day_offsets, day_offsets, day_offsets, st.sampled_from(BEYOND))
stage_choice = st.sampled_from([*[None] * 6, *KEYS, CAFCASS, "new", "resolved", "stage9", ""])
escalate_to = st.sampled_from([*[None] * 4, *KEYS, CAFCASS, "bogus"])
themes = st.one_of(st.none(), st.sampled_from([*TAXONOMY.keys, "drift"]))
# An agreed action: (text, days from today, whether to move that day on to a working day,
# owner). Mostly valid, so that a response with actions gets through often enough.
actions_in = st.lists(
    st.tuples(
        st.sampled_from(["Share the report", "Arrange contact", "Visit", "Review", "Call", " "]),
        day_offsets,
        st.sampled_from([True, True, True, True, True, False]),
        st.one_of(st.none(), st.none(), st.sampled_from(ORG_PEOPLE), anyone),
    ),
    min_size=1, max_size=3,
)
actions_or_none = st.one_of(st.just([]), actions_in)

# The events a successful command writes.
EXPECTED_KINDS: dict[str, list[str]] = {
    "raise": ["raised"],
    "escalate": ["escalated"],
    "resolve": ["resolved"],
    "withdraw": ["withdrawn"],
    "refer": ["referred"],
    "cafcass_response": ["cafcass_response"],
    "acknowledge": ["acknowledged"],
    "hold": ["held"],
    "resume": ["resumed"],
    "extend": ["extended"],
    "reopen": ["reopened"],
    "action_done": ["action_done"],
    "set_theme": ["theme_confirmed"],
    "suggest_theme": ["theme_suggested"],
    "remind": ["reminder"],
    "end_hold": ["resumed"],
    "action_overdue": ["action_overdue"],
}
FLOWS = ("remind", "act_on_overdue", "end_hold", "action_overdue", "suggest_theme")

Snapshot = tuple[Any, ...]


@settings(
    # 50 runs of up to 50 steps: about a minute and a half on two busy cores; raise it
    # locally (HYPOTHESIS profile or by hand) when changing the rules.
    max_examples=50, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
class AlertLadder(RuleBasedStateMachine):
    alerts = Bundle("alerts")

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory(prefix="drp-prop-")
        path = Path(self._dir.name) / "drp.db"
        databases.copy_template("org", path)  # migrated, ORG_FILE loaded: made once
        self.engine = db.make_engine(f"sqlite:///{path}")
        self.tables = sorted(set(inspect(self.engine).get_table_names()) - ORG_TABLES)
        self.now = START

    def teardown(self) -> None:
        self.engine.dispose()
        self._dir.cleanup()

    # -- helpers ------------------------------------------------------------------------------
    @property
    def today(self) -> date:
        return local_date(self.now, LONDON)

    def _advance(self, step: Step) -> None:
        days, at = step
        if at is None:
            self.now += timedelta(days=days)
            return
        local = self.now.astimezone(LONDON)
        later = datetime.combine(local.date() + timedelta(days=days), at, tzinfo=LONDON)
        while later.astimezone(UTC) < self.now:
            later += timedelta(days=1)
        self.now = later.astimezone(UTC)

    def _service(self, session: Session) -> AlertService:
        return AlertService(
            session, protocol=PROTOCOL, calendar=CALENDAR, clock=FixedClock(self.now),
            tz=LONDON, taxonomy=TAXONOMY,
        )

    def _snapshot(self) -> Snapshot:
        """Every row a command may write (alerts with their versions, actions, the outbox, ...;
        of the append-only logs, how many rows and the last id), read straight from the
        database."""
        with self.engine.connect() as conn:
            return tuple(
                (name, conn.execute(text(
                    f'SELECT count(*), max(id) FROM "{name}"' if name in APPEND_ONLY
                    else f'SELECT * FROM "{name}" ORDER BY 1'
                )).all())
                for name in self.tables
            )

    @staticmethod
    def _changed(before: Snapshot, after: Snapshot) -> list[str]:
        return [name for (name, rows), (_, rows2) in zip(before, after, strict=True)
                if rows != rows2]

    def _max_event_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM event")).scalar_one())

    def _alert(self, alert_id: int) -> Alert:
        with Session(self.engine) as s:
            alert = s.get(Alert, alert_id)
            assert alert is not None
            return alert

    def _who(self, who: str, alert_id: int | None = None, child: str | None = None) -> str:
        """The username for a placeholder, read from the database as it is now."""
        if who not in (THE_IRO, THE_RESPONSIBLE):
            return who
        if child is not None:
            return IRO_OF[child]
        assert alert_id is not None
        with Session(self.engine) as s:
            alert = s.get(Alert, alert_id)
            assert alert is not None
            if who == THE_IRO:
                person = s.get(Person, alert.iro_id)
            else:
                child_row = s.get(Child, alert.child_id)
                assert child_row is not None
                pid = Line.of(s, child_row).holder(PROTOCOL.stage(alert.stage).responsible)
                person = s.get(Person, pid) if pid is not None else None
            return person.username if person is not None else NOBODY

    @staticmethod
    def _offers(trigger: str, alert: int, who: str) -> Callable[[AlertService], bool]:
        return lambda s: trigger in s.allowed(alert, who)

    def _check_stage_entered(self, before: Alert | None, alert: Alert,
                             informal: date | None = None) -> None:
        """Just entered its stage: the stage's clock starts today, in London; the formal
        clock starts the first time it enters a formal stage (20 working days), and a formal
        stage's due date stays within it (past it, due the day it is entered, or the next
        working day); the
        informal stage's date is the IRO's (`informal`) or its default."""
        stage = PROTOCOL.stage(alert.stage)
        assert alert.stage_entered_at == self.now
        assert alert.stage_responded_at is None and alert.acknowledged_at is None
        started = before.formal_since if before is not None else None
        if stage.formal and started is None:
            assert alert.formal_since == self.today
            assert alert.resolution_due == workdays.add(
                self.today, PROTOCOL.resolution_working_days)
        elif before is not None:
            assert (alert.formal_since, alert.resolution_due) == (
                before.formal_since, before.resolution_due)
        else:
            assert (alert.formal_since, alert.resolution_due) == (None, None)
        due = workdays.add(self.today, stage.timescale_working_days)
        if stage.formal:
            assert alert.resolution_due is not None
            due = min(due, max(alert.resolution_due, workdays.on_or_after(self.today)))
        elif informal is not None:
            due = informal
        assert alert.stage_due == due, (alert.stage, self.today, alert.stage_due)

    def _run(
        self, verb: str, username: str, step: Step, call: Callable[[AlertService], Any],
        *, alert_id: int | None = None, kinds: Callable[[Any], list[str]] | None = None,
        offer: Callable[[AlertService], bool] | None = None,
        benign: Callable[[DrpError], bool] = lambda exc: isinstance(exc, BadValue),
    ) -> Any:
        """One unit of work, as of `step` after the last one, as conftest's `run` does it.

        Returns what the command returned when it did something; None when it was refused
        with a DrpError or did nothing (a flow with nothing to do), after checking that no row
        changed. Anything else raised propagates: that is a bug.

        `offer` asks, just before, whether the pages would offer this to the person
        (AlertService.allowed, children_for): what is offered is refused only for a `benign`
        reason (a bad value given), what is not offered is refused, and what the person may not
        see is refused as NotFound."""
        self._advance(step)
        offered: bool | None = None
        if offer is not None:
            try:
                with db.transaction(self.engine) as session:
                    offered = offer(self._service(session))
            except NotFound:
                offered = None  # the person cannot see it (or does not exist)
        before = self._snapshot()
        last_event = self._max_event_id()
        try:
            with db.transaction(self.engine) as session:
                result = call(self._service(session))
                done_id = int(result.id) if isinstance(result, Alert) else alert_id
        except DrpError as exc:
            event(f"{verb}: {type(exc).__name__}")
            changed = self._changed(before, self._snapshot())
            assert not changed, f"{verb} by {username} was refused ({exc}) but wrote {changed}"
            if offer is not None and offered is None:
                assert isinstance(exc, NotFound), f"{verb} by {username}, who cannot see it: {exc}"
            if offered:
                assert benign(exc), f"{verb} was offered to {username} but refused: {exc!r}"
            return None
        if not result:
            event(f"{verb}: nothing to do")
            changed = self._changed(before, self._snapshot())
            assert not changed, f"{verb} did nothing (returned {result!r}) but wrote {changed}"
            return None

        event(f"{verb}: ok")
        if offer is not None:
            assert offered, f"{verb} by {username} succeeded but was not offered to them"
        if alert_id is not None:
            assert done_id == alert_id
        with Session(self.engine) as s:
            new = s.exec(select(Event).where(col(Event.id) > last_event).order_by(col(Event.id)))
            events = list(new)
        assert events, f"{verb} by {username} succeeded but wrote no event"
        for e in events:
            assert e.actor == username, (verb, username, e.actor, e.kind)
            assert e.alert_id == done_id, (verb, e.alert_id, done_id)
            assert e.at == self.now, (verb, e.at, self.now)
        if kinds is not None:
            expected = kinds(result)
        elif verb == "escalate" and username == SYSTEM:
            expected = ["auto_escalated"]
        else:
            expected = EXPECTED_KINDS[verb]
        assert [e.kind for e in events] == expected, (verb, username)
        return result

    # -- commands ------------------------------------------------------------------------------
    @initialize(
        target=alerts, child=st.sampled_from(CHILDREN),
        stage=st.one_of(st.none(), st.sampled_from(KEYS)),
    )
    def first_alert(self, child: str, stage: str | None) -> int:
        """Every run starts with one alert raised properly by the child's IRO."""
        iro = IRO_OF[child]
        alert = self._run(
            "raise", iro, (0, None), lambda s: s.raise_alert(iro, child, GOOD, stage=stage)
        )
        assert alert is not None
        return int(alert.id)

    @rule(
        target=alerts, step=steps, who=raisers, child=st.sampled_from(CHILDREN),
        summary=words, stage=stage_choice, theme=themes,
        due_on=st.one_of(st.none(), st.none(), given_days), separate=st.booleans(),
    )
    def raise_alert(
        self, step: Step, who: str, child: str, summary: str, stage: str | None,
        theme: str | None, due_on: int | date | None, separate: bool,
    ) -> Any:
        who = self._who(who, child=child)
        chosen: list[date | None] = [None]

        def call(s: AlertService) -> Alert:
            chosen[0] = (s.today + timedelta(days=due_on) if isinstance(due_on, int)
                         else due_on)
            return s.raise_alert(who, child, summary, stage=stage, theme=theme,
                                 due_on=chosen[0], separate=separate)

        alert = self._run(
            "raise", who, step, call, offer=lambda s: child in s.children_for(who),
            # a bad value, or a second open concern not confirmed as a separate matter
            benign=lambda exc: isinstance(exc, BadValue) or (
                not separate and isinstance(exc, InvalidTransition)
                and "already has an open alert" in str(exc)),
        )
        if alert is None:
            return multiple()
        after = self._alert(int(alert.id))
        assert (after.status, after.stage, after.on_hold) == ("open", stage or KEYS[0], False)
        assert after.raised_at == self.now
        self._check_stage_entered(None, after, informal=chosen[0])
        if chosen[0] is not None:  # the IRO's informal date: a working day, at most 10 on
            assert self.today < chosen[0] <= workdays.add(
                self.today, PROTOCOL.stages[0].max_working_days)
        return int(alert.id)

    @rule(alert=alerts, step=steps, who=responders, message=words, actions=actions_or_none)
    def respond(
        self, alert: int, step: Step, who: str, message: str,
        actions: list[tuple[str, int, bool, str | None]],
    ) -> None:
        who = self._who(who, alert)
        before = self._alert(alert)
        with Session(self.engine) as s:
            numbered = len(s.exec(select(Action.id).where(Action.alert_id == alert)).all())
        sent: list[ActionIn] = []

        def call(s: AlertService) -> Alert:
            sent.clear()
            for what, offset, to_working_day, owner in actions:
                due = s.today + timedelta(days=offset)
                if to_working_day:
                    due = workdays.on_or_after(max(due, s.today))
                sent.append(ActionIn(what, due, owner))
            return s.respond(alert, who, message, sent)

        kinds = ["responded"] + ["action_agreed"] * len(actions)
        if self._run(
            "respond", who, step, call, alert_id=alert, kinds=lambda _: kinds,
            offer=self._offers("respond", alert, who),
            # a bad action (empty, in the past, not on a working day, no such owner)
            benign=lambda exc: isinstance(exc, BadValue)
            or (isinstance(exc, NotFound) and str(exc).startswith("action ")),
        ) is None:
            return
        after = self._alert(alert)
        assert before.status == after.status == "open" and after.stage == before.stage
        assert after.stage_responded_at == (before.stage_responded_at or self.now)
        with Session(self.engine) as s:
            new = list(s.exec(
                select(Action).where(Action.alert_id == alert, col(Action.no) > numbered)
                .order_by(col(Action.no))
            ))
            owners = {p.id: p.username for p in s.exec(select(Person))}
        assert [(a.text, a.due, owners[a.owner_id], a.stage) for a in new] == [
            (a.text.strip(), a.due, a.owner or who, after.stage) for a in sent
        ]

    @rule(alert=alerts, step=steps, who=people, reason=words, to=escalate_to)
    def escalate(self, alert: int, step: Step, who: str, reason: str, to: str | None) -> None:
        who = self._who(who, alert)
        before = self._alert(alert)
        if self._run(
            "escalate", who, step, lambda s: s.escalate(alert, who, reason, to=to),
            alert_id=alert, offer=self._offers("escalate", alert, who),
            # a stage named that is not later on the ladder
            benign=lambda exc: isinstance(exc, BadValue)
            or (isinstance(exc, InvalidTransition) and to is not None),
        ) is None:
            return
        self._check_escalated(before, self._alert(alert), to)

    def _check_escalated(self, before: Alert, after: Alert, to: str | None) -> None:
        assert before.status == after.status == "open" and not before.on_hold
        assert after.stage == (to or KEYS[KEYS.index(before.stage) + 1])
        assert KEYS.index(after.stage) > KEYS.index(before.stage)
        self._check_stage_entered(before, after)

    def _close(self, verb: str, status: str, alert: int, who: str, step: Step,
               text: str, **extra: Any) -> None:
        who = self._who(who, alert)
        before = self._alert(alert)
        if self._run(verb, who, step, lambda s: getattr(s, verb)(alert, who, text, **extra),
                     alert_id=alert, offer=self._offers(verb, alert, who)) is None:
            return
        after = self._alert(alert)
        assert before.status == "open"
        assert after.status == status
        assert after.stage == before.stage
        assert after.closed_at == self.now
        assert not after.on_hold and after.hold_until is None
        assert after.outcome == (text.strip() if status == "resolved" else before.outcome)

    @rule(alert=alerts, step=steps, who=closers, outcome=words)
    def resolve(self, alert: int, step: Step, who: str, outcome: str) -> None:
        self._close("resolve", "resolved", alert, who, step, outcome)

    @rule(alert=alerts, step=steps, who=closers, reason=words)
    def withdraw(self, alert: int, step: Step, who: str, reason: str) -> None:
        self._close("withdraw", "withdrawn", alert, who, step, reason)

    def _referral(self, alert: int) -> Referral | None:
        with Session(self.engine) as s:
            return s.exec(select(Referral).where(Referral.alert_id == alert)).first()

    @rule(alert=alerts, step=steps, who=the_iro_mostly, reason=words,
          advice=st.one_of(st.none(), words, words))
    def refer(self, alert: int, step: Step, who: str, reason: str, advice: str | None) -> None:
        """Concurrent with the local process: the alert stays as it was, with one referral.
        Who gave the legal advice is required (None or blank is refused, changing nothing)."""
        who = self._who(who, alert)
        before = self._alert(alert)
        if self._run("refer", who, step,
                     lambda s: s.refer(alert, who, reason, legal_advice=advice),
                     alert_id=alert, offer=self._offers("refer", alert, who)) is None:
            return
        after = self._alert(alert)
        assert before.status == after.status == "open"
        assert (after.stage, after.stage_due, after.resolution_due, after.on_hold) == (
            before.stage, before.stage_due, before.resolution_due, before.on_hold)
        referral = self._referral(alert)
        assert referral is not None and referral.referred_on == self.today
        assert advice is not None and referral.legal_advice == advice.strip()
        assert referral.response is None

    @rule(alert=alerts, step=steps, who=the_iro_mostly,
          response=st.sampled_from([*RESPONSES, *RESPONSES, "maybe"]),
          note=st.one_of(st.none(), words))
    def cafcass_response(self, alert: int, step: Step, who: str, response: str,
                         note: str | None) -> None:
        who = self._who(who, alert)
        before = self._alert(alert)
        if self._run("cafcass_response", who, step,
                     lambda s: s.cafcass_response(alert, who, response, note),
                     alert_id=alert, offer=self._offers("cafcass_response", alert, who),
                     ) is None:
            return
        after = self._alert(alert)
        assert (after.status, after.stage) == (before.status, before.stage)
        referral = self._referral(alert)
        assert referral is not None
        assert (referral.response, referral.responded_on) == (response, self.today)

    @rule(alert=alerts, step=steps, who=responders)
    def acknowledge(self, alert: int, step: Step, who: str) -> None:
        """Acknowledged is not responded: the stage's clock runs on."""
        who = self._who(who, alert)
        before = self._alert(alert)
        if self._run("acknowledge", who, step, lambda s: s.acknowledge(alert, who),
                     alert_id=alert, offer=self._offers("acknowledge", alert, who)) is None:
            return
        after = self._alert(alert)
        assert before.acknowledged_at is None and after.acknowledged_at == self.now
        assert (after.stage, after.stage_due, after.stage_responded_at) == (
            before.stage, before.stage_due, None)

    @rule(
        alert=alerts, step=steps, who=people, reason=words,
        until=st.one_of(st.none(), given_days, st.integers(80, 100)),
    )
    def hold(self, alert: int, step: Step, who: str, reason: str,
             until: int | date | None) -> None:
        """The end date is required, after today, at most 65 working days on, before 2101."""
        who = self._who(who, alert)
        before = self._alert(alert)
        days: list[date | None] = [None]

        def call(s: AlertService) -> Alert:
            days[0] = s.today + timedelta(days=until) if isinstance(until, int) else until
            return s.hold(alert, who, reason, until=days[0])

        if self._run("hold", who, step, call, alert_id=alert,
                     offer=self._offers("hold", alert, who)) is None:
            return
        after = self._alert(alert)
        assert before.status == "open" and not before.on_hold
        assert (after.on_hold, after.held_since, after.hold_until) == (True, self.today, days[0])
        assert days[0] is not None and self.today < days[0] <= workdays.add(
            self.today, PROTOCOL.max_hold_working_days)
        assert (after.stage_due, after.resolution_due) == (
            before.stage_due, before.resolution_due)

    @rule(alert=alerts, step=steps, who=people, comment=st.one_of(st.none(), words))
    def resume(self, alert: int, step: Step, who: str, comment: str | None) -> None:
        who = self._who(who, alert)
        before = self._alert(alert)
        if self._run("resume", who, step, lambda s: s.resume(alert, who, comment),
                     alert_id=alert, offer=self._offers("resume", alert, who)) is None:
            return
        self._check_resumed(before, self._alert(alert))

    def _check_resumed(self, before: Alert, after: Alert) -> None:
        assert before.on_hold and before.held_since is not None
        assert not after.on_hold and after.held_since is None and after.hold_until is None
        # The working days on hold move both clocks on.
        held = max(0, workdays.between(before.held_since, self.today))
        assert before.stage_due is not None
        assert after.stage_due == workdays.add(before.stage_due, held)
        assert after.resolution_due == (None if before.resolution_due is None
                                        else workdays.add(before.resolution_due, held))
        assert after.formal_since == before.formal_since

    @rule(alert=alerts, step=steps, who=people, reason=words, until=st.one_of(
        given_days, st.integers(-3, 16).map(lambda n: ("after the due date", n))))
    def extend(self, alert: int, step: Step, who: str, reason: str,
               until: int | date | tuple[str, int]) -> None:
        """Never into the past, at most 10 working days after the current date; only the
        informal date may come forward; past the formal due date, that moves too."""
        who = self._who(who, alert)
        before = self._alert(alert)
        days: list[date] = []

        def call(s: AlertService) -> Alert:
            if isinstance(until, tuple):  # days from the current due date (or today)
                current = s.s.get(Alert, alert)
                due = current.stage_due if current and current.stage_due else s.today
                days[:] = [max(due, s.today) + timedelta(days=until[1])]
            else:
                days[:] = [s.today + timedelta(days=until) if isinstance(until, int)
                           else until]
            return s.extend(alert, who, days[0], reason)

        if self._run("extend", who, step, call, alert_id=alert,
                     offer=self._offers("extend", alert, who)) is None:
            return
        after = self._alert(alert)
        assert before.status == "open" and not before.on_hold
        assert before.stage_due is not None
        assert after.stage_due == days[0] and days[0] >= self.today
        assert days[0] <= workdays.add(before.stage_due, PROTOCOL.max_extension_working_days)
        assert workdays.is_working_day(days[0])
        if PROTOCOL.is_formal(before.stage):
            assert after.stage_due > before.stage_due
        else:
            assert after.stage_due != before.stage_due
        if before.resolution_due is None:
            assert after.resolution_due is None
        else:
            assert after.resolution_due == max(before.resolution_due, days[0])

    @rule(alert=alerts, step=steps, who=people, reason=words)
    def reopen(self, alert: int, step: Step, who: str, reason: str) -> None:
        who = self._who(who, alert)
        before = self._alert(alert)
        if self._run("reopen", who, step, lambda s: s.reopen(alert, who, reason),
                     alert_id=alert, offer=self._offers("reopen", alert, who)) is None:
            return
        after = self._alert(alert)
        assert before.status == "resolved"
        assert (after.status, after.stage) == ("open", before.stage)
        assert after.closed_at is None and after.outcome is None
        self._check_stage_entered(before, after)
        with Session(self.engine) as s:
            outstanding = s.exec(select(Action).where(
                Action.alert_id == alert, col(Action.done_at).is_(None))).all()
        assert outstanding, "reopened with every agreed action done"

    @rule(
        alert=alerts, step=steps, who=responders, no=st.integers(0, 4),
        comment=st.one_of(st.none(), words),
    )
    def action_done(
        self, alert: int, step: Step, who: str, no: int, comment: str | None
    ) -> None:
        who = self._who(who, alert)
        before = self._alert(alert)
        if self._run("action_done", who, step,
                     lambda s: s.action_done(alert, no, who, comment),
                     alert_id=alert) is None:
            return
        after = self._alert(alert)
        assert (after.status, after.stage, after.on_hold) == (
            before.status, before.stage, before.on_hold)
        with Session(self.engine) as s:
            action = s.exec(select(Action).where(Action.alert_id == alert, Action.no == no)).one()
            person = s.exec(select(Person).where(Person.username == who)).one()
        assert (action.done_at, action.done_by_id) == (self.now, person.id)

    @rule(alert=alerts, step=steps, who=people, theme=st.sampled_from([*TAXONOMY.keys, "drift"]))
    def set_theme(self, alert: int, step: Step, who: str, theme: str) -> None:
        who = self._who(who, alert)
        before = self._alert(alert)
        if self._run("set_theme", who, step, lambda s: s.set_theme(alert, who, theme),
                     alert_id=alert, offer=self._offers("set_theme", alert, who)) is None:
            return
        after = self._alert(alert)
        assert (after.theme, after.theme_confirmed) == (theme, True)
        assert (after.status, after.stage) == (before.status, before.stage)

    @rule(
        alert=alerts, step=steps, flow=st.sampled_from(FLOWS), no=st.sampled_from([1, 1, 2, 3]),
        theme=st.sampled_from(TAXONOMY.keys), unsure=st.booleans(),
    )
    def flow(self, alert: int, step: Step, flow: str, no: int, theme: str,
             unsure: bool) -> None:
        """What the scheduled flows do, as `system`: each either acts or does nothing."""
        before = self._alert(alert)
        # A suggestion is recorded (even an unsure one) once, only while no theme is set, and
        # never on a closed alert.
        with Session(self.engine) as s:
            earlier = s.exec(select(Event.id).where(
                Event.alert_id == alert, Event.kind == "theme_suggested")).first()
        suggests = (before.theme is None and not before.theme_confirmed and earlier is None
                    and before.status not in (*CLOSED, "closed"))

        def suggest(s: AlertService) -> Any:
            done = s.suggest_theme(
                alert, Suggestion(theme=theme, confidence=0.5, unsure=unsure))
            assert done == ((not unsure) if suggests else None)
            return s.s.get(Alert, alert) if suggests else done

        calls: dict[str, Callable[[AlertService], Any]] = {
            "remind": lambda s: s.remind(alert),
            "act_on_overdue": lambda s: s.act_on_overdue(alert),
            "end_hold": lambda s: s.end_hold(alert),
            "action_overdue": lambda s: s.action_overdue(alert, no),
            "suggest_theme": suggest,
        }

        def kinds(done: Any) -> list[str]:
            if flow == "act_on_overdue":
                return ["auto_escalated" if done == "escalated" else str(done)]
            return EXPECTED_KINDS[flow]

        done = self._run(flow, SYSTEM, step, calls[flow], alert_id=alert, kinds=kinds)
        if done is None:
            return
        after = self._alert(alert)
        if flow == "act_on_overdue" and done == "escalated":
            self._check_escalated(before, after, None)
        elif flow == "end_hold":
            assert before.hold_until is not None and before.hold_until <= self.today
            self._check_resumed(before, after)
        else:
            assert (after.status, after.stage, after.on_hold) == (
                before.status, before.stage, before.on_hold)
        if flow == "suggest_theme":
            assert (after.theme, after.theme_suggested, after.theme_confirmed) == (
                None if unsure else theme, theme, False)

    @rule(step=steps, who=anyone, verb=st.sampled_from(sorted(EXPECTED_KINDS)))
    def no_such_alert(self, step: Step, who: str, verb: str) -> None:
        """Whatever is asked of an alert that does not exist is refused as NotFound."""
        calls: dict[str, Callable[[AlertService], Any]] = {
            "raise": lambda s: s.raise_alert(who, "R999", "No such child"),
            "escalate": lambda s: s.escalate(MISSING_ALERT, who, "x"),
            "resolve": lambda s: s.resolve(MISSING_ALERT, who, "x"),
            "withdraw": lambda s: s.withdraw(MISSING_ALERT, who, "x"),
            "refer": lambda s: s.refer(MISSING_ALERT, who, "x", legal_advice="x"),
            "cafcass_response": lambda s: s.cafcass_response(MISSING_ALERT, who, "accepted"),
            "acknowledge": lambda s: s.acknowledge(MISSING_ALERT, who),
            "hold": lambda s: s.hold(MISSING_ALERT, who, "x", until=date(2027, 12, 1)),
            "resume": lambda s: s.resume(MISSING_ALERT, who),
            "extend": lambda s: s.extend(MISSING_ALERT, who, date(2027, 12, 1), "x"),
            "reopen": lambda s: s.reopen(MISSING_ALERT, who, "x"),
            "action_done": lambda s: s.action_done(MISSING_ALERT, 1, who),
            "set_theme": lambda s: s.set_theme(MISSING_ALERT, who, TAXONOMY.keys[0]),
            "suggest_theme": lambda s: s.suggest_theme(
                MISSING_ALERT, Suggestion(theme=TAXONOMY.keys[0], confidence=1, unsure=False)),
            "remind": lambda s: s.remind(MISSING_ALERT),
            "end_hold": lambda s: s.end_hold(MISSING_ALERT),
            "action_overdue": lambda s: s.action_overdue(MISSING_ALERT, 1),
        }

        def expect_not_found(s: AlertService) -> Any:
            try:
                calls[verb](s)
            except NotFound:
                raise
            except DrpError as exc:
                raise AssertionError(f"{verb} on a missing alert by {who}: {exc!r}") from exc
            raise AssertionError(f"{verb} on a missing alert by {who} did not raise NotFound")

        assert self._run(verb, who, step, expect_not_found) is None

    # -- reads: they fail only with a DrpError, write no event, and agree with each other ------
    @rule(alert=alerts, step=steps, who=anyone)
    def show(self, alert: int, step: Step, who: str) -> None:
        """An alert as shown agrees with its row and its events; every alert in the person's
        inbox is one they are offered to respond to."""
        self._advance(step)
        before = self._max_event_id()
        try:
            with db.transaction(self.engine) as session:
                svc = self._service(session)
                view = svc.show(alert, who)
                logged = session.exec(select(Event).where(Event.alert_id == alert)).all()
                inbox = svc.inbox(who)
                for waiting in inbox:
                    assert waiting.status == "open" and not waiting.on_hold, waiting
                    assert "respond" in svc.allowed(waiting.id, who), (who, waiting.id)
        except DrpError:
            pass
        else:
            row = self._alert(alert)
            assert [e.kind for e in view.events] == [e.kind for e in logged]
            assert (view.status, view.stage, view.on_hold) == (row.status, row.stage, row.on_hold)
        assert self._max_event_id() == before

    @rule(
        step=steps, who=anyone,
        status=st.sampled_from([None, "open", "overdue", "closed", "bogus"]),
    )
    def list_alerts(self, step: Step, who: str, status: str | None) -> None:
        """The list shows exactly the alerts this person may look at one by one."""
        self._advance(step)
        before = self._max_event_id()
        try:
            with db.transaction(self.engine) as session:
                svc = self._service(session)
                listed = svc.list_alerts(who, status)
                visible = set()
                for aid in session.exec(select(Alert.id)):
                    try:
                        svc.show(int(aid or 0), who)
                    except NotFound:
                        continue
                    visible.add(aid)
        except DrpError:
            assert status == "bogus" or who == NOBODY, (who, status)
            return
        assert self._max_event_id() == before
        ids = {v.id for v in listed}
        assert ids <= visible, (who, status, ids - visible)
        if status is None:
            assert ids == visible, (who, visible - ids)
        for v in listed:
            if status in ("open", "overdue"):
                assert v.status == "open", v
            if status == "closed":
                assert v.status in CLOSED, v
            if status == "overdue":
                assert v.overdue and not v.on_hold, v

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def the_database_is_consistent(self) -> None:
        with Session(self.engine) as s:
            alerts = list(s.exec(select(Alert).order_by(col(Alert.id))))
            events = list(s.exec(select(Event).order_by(col(Event.id))))
            actions = list(s.exec(select(Action).order_by(col(Action.id))))
            referrals: dict[int, list[Referral]] = {}
            for r in s.exec(select(Referral)):
                referrals.setdefault(r.alert_id, []).append(r)
            children = {c.id: c.ref for c in s.exec(select(Child))}
        child_of = {a.id: children[a.child_id] for a in alerts}
        by_alert: dict[int, list[Event]] = {}
        for e in events:
            by_alert.setdefault(e.alert_id, []).append(e)
        acts_of: dict[int, list[Action]] = {}
        for a in actions:
            acts_of.setdefault(a.alert_id, []).append(a)
        assert set(by_alert) <= {a.id for a in alerts}

        for alert in alerts:
            assert alert.id is not None
            aid = alert.id
            # One current stage, on the ladder (a referral to Cafcass runs alongside it).
            assert alert.status in STATUSES, (aid, alert.status)
            assert alert.stage in KEYS, (aid, alert.status, alert.stage)
            assert not alert.on_hold or alert.status == "open", aid
            assert (alert.held_since is not None) == alert.on_hold, aid
            assert (alert.closed_at is None) == (alert.status == "open"), aid

            # The event log: seq 1..n in order, `at` never going back, starting with `raised`.
            log = by_alert.get(aid, [])
            assert [e.seq for e in log] == list(range(1, len(log) + 1)), (aid, log)
            assert alert.last_seq == len(log), (aid, alert.last_seq, len(log))
            assert log[0].kind == "raised", (aid, log[0].kind)
            assert log[0].from_stage is None
            for prev, e in pairwise(log):
                assert prev.at <= e.at, (aid, prev.seq, prev.at, e.seq, e.at)
                # Stages chain: each event starts where the last one ended ...
                assert e.from_stage == prev.to_stage, (aid, prev.kind, e.kind)
                # ... and only go up the ladder, except on reopening.
                if e.from_stage in KEYS and e.to_stage in KEYS and e.kind != "reopened":
                    assert PROTOCOL.index(e.to_stage) >= PROTOCOL.index(e.from_stage), (
                        aid, e.kind, e.from_stage, e.to_stage,
                    )
            assert log[-1].to_stage == alert.stage, (aid, log[-1].kind, alert.stage)
            # Each event carries the child's team and IRO (no cover is recorded here).
            assert all(e.team in TEAMS and e.iro == IRO_OF[child_of[aid]] for e in log), aid
            assert all(e.as_cover_for is None for e in log), aid
            # The formal clock: started the first time a formal stage was entered, never while
            # only informal; at most one referral, with its event.
            formal = [e for e in log if e.to_stage in KEYS and PROTOCOL.is_formal(e.to_stage)]
            assert (alert.formal_since is None) == (alert.resolution_due is None) == (
                not formal), (aid, alert.formal_since, alert.resolution_due)
            if formal:
                assert alert.formal_since == local_date(formal[0].at, LONDON), aid
            referred = [e for e in log if e.kind == "referred"]
            assert len(referred) == len(referrals.get(aid, [])) <= 1, aid
            answered = [e for e in log if e.kind == "cafcass_response"]
            assert not answered or (referred and referred[0].seq < answered[0].seq), aid
            # The last event keeps the clocks as they stand (reports replay them).
            kept = log[-1].data or {}
            if "resolution_due" in kept:
                assert (kept["stage_due"], kept["resolution_due"], kept["on_hold"]) == (
                    alert.stage_due.isoformat() if alert.stage_due else None,
                    alert.resolution_due.isoformat() if alert.resolution_due else None,
                    alert.on_hold,
                ), (aid, log[-1].kind)

            # Due dates fall on working days.
            if alert.stage_due is not None:
                assert workdays.is_working_day(alert.stage_due), (aid, alert.stage_due)
            if alert.resolution_due is not None:
                assert workdays.is_working_day(alert.resolution_due), (
                    aid, alert.resolution_due)

            # Actions: numbered 1..m, due on working days, done iff an event says so.
            acts = acts_of.get(aid, [])
            assert sorted(a.no for a in acts) == list(range(1, len(acts) + 1)), aid
            done = {e.data["no"] for e in log if e.kind == "action_done" and e.data}
            agreed = [e for e in log if e.kind == "action_agreed"]
            assert len(agreed) == len(acts), aid
            for a in acts:
                assert workdays.is_working_day(a.due), (aid, a.no, a.due)
                assert (a.done_at is not None) == (a.no in done), (aid, a.no)


TestAlertLadder = AlertLadder.TestCase


# --- the working-day calendar against the hand-written oracle --------------------------------

oracle_days = st.dates(min_value=date(2026, 3, 1), max_value=date(2029, 9, 30))


@settings(max_examples=400, deadline=None)
@given(start=oracle_days, n=st.integers(-40, 60))
def test_adding_working_days_matches_the_day_by_day_count(start: date, n: int) -> None:
    assert CALENDAR.add(start, n) == workdays.add(start, n)


@settings(max_examples=400, deadline=None)
@given(a=oracle_days, b=oracle_days)
def test_working_days_between_match_the_day_by_day_count(a: date, b: date) -> None:
    assert CALENDAR.between(a, b) == workdays.between(a, b)
    assert CALENDAR.next_working_day(a) == workdays.on_or_after(a)


def test_the_oracle_and_the_calendar_agree_on_every_day_of_its_years() -> None:
    day = workdays.FIRST
    while day <= workdays.LAST:
        assert CALENDAR.is_working_day(day) == workdays.is_working_day(day), day
        day += timedelta(days=1)


def test_the_oracle_on_known_answers() -> None:
    # Counted on a calendar: Easter 2027 (Good Friday 26 March, Easter Monday 29 March).
    assert workdays.add(date(2027, 3, 25), 1) == date(2027, 3, 30)
    assert workdays.add(date(2027, 3, 25), 5) == date(2027, 4, 5)
    assert workdays.add(date(2027, 4, 5), -5) == date(2027, 3, 25)
    assert workdays.add(date(2027, 3, 27), 0) == date(2027, 3, 27)
    assert workdays.between(date(2027, 3, 25), date(2027, 4, 5)) == 5
    assert workdays.between(date(2027, 4, 5), date(2027, 3, 25)) == -5
    # 20 working days from Wednesday 1 September 2027 (no bank holiday): Wednesday 29th.
    assert workdays.add(date(2027, 9, 1), 20) == date(2027, 9, 29)
    # Christmas 2027 (substitute days Monday 27 and Tuesday 28 December), New Year 2028
    # (substitute Monday 3 January).
    assert workdays.add(date(2027, 12, 24), 1) == date(2027, 12, 29)
    assert workdays.add(date(2027, 12, 31), 1) == date(2028, 1, 4)
    assert workdays.on_or_after(date(2027, 12, 25)) == date(2027, 12, 29)
