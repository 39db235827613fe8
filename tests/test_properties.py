"""Property-based tests of the service layer: a hypothesis state machine drives random
sequences of commands, by random people, at random (forward-moving) instants, against a real
SQLite database, and checks the ladder's invariants by reading the database after every step.

Every command must either succeed or be refused with a DrpError that changes nothing; any other
exception is a bug and propagates."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, settings
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
from drp.access import SYSTEM, Line
from drp.alerts import ActionIn, AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, local_date
from drp.errors import DrpError, NotFound
from drp.models import Action, Alert, Child, Event, Person
from drp.org import load_org
from drp.protocol import load_protocol
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy

from .conftest import DATA, LONDON

ORG_FILE = DATA / "org.yaml"
PROTOCOL = load_protocol(CONFIG_DIR / "protocol.yaml")
TAXONOMY = load_taxonomy(CONFIG_DIR / "themes.yaml")
CALENDAR = WorkingCalendar()
KEYS = PROTOCOL.keys
CAFCASS = PROTOCOL.cafcass.key
STATUSES = ("open", "resolved", "withdrawn", "referred")

_ORG = yaml.safe_load(ORG_FILE.read_text(encoding="utf-8"))
ORG_PEOPLE: list[str] = [p["username"] for p in _ORG["people"]]
IRO_SIDE: list[str] = [
    p["username"] for p in _ORG["people"] if {"iro", "iro_manager"} & set(p["roles"])
]
CHILDREN: list[str] = [c["ref"] for c in _ORG["children"]]
IRO_OF: dict[str, str] = {c["ref"]: c["iro"] for c in _ORG["children"]}
NOBODY = "nobody.zed"  # not in the organisation file
EVERYONE = [*ORG_PEOPLE, NOBODY, SYSTEM]
MISSING_ALERT = 10**6

# Monday 15 March 2027, 09:00 in London: the run crosses the clocks going forward (28 March),
# Easter (Good Friday 26 March, Easter Monday 29 March) and the May bank holidays.
START = datetime(2027, 3, 15, 9, 0, tzinfo=LONDON).astimezone(UTC)

# --- strategies ------------------------------------------------------------------------------

steps = st.one_of(
    st.integers(0, 180).map(lambda m: timedelta(minutes=m)),
    st.integers(1, 72).map(lambda h: timedelta(hours=h)),
    st.integers(1, 6 * 24 * 60).map(lambda m: timedelta(minutes=m)),
)
# Anyone at all, but (so that enough commands get through) the people who may act on the alert
# more often than chance. The placeholders are replaced, as the rule runs, by the alert's IRO
# (the child's IRO, for raising) and by whoever is responsible at the alert's stage.
THE_IRO = "<the IRO>"
THE_RESPONSIBLE = "<the responsible>"
people = st.sampled_from([*EVERYONE, *[THE_IRO] * 8, *IRO_SIDE])
raisers = st.sampled_from([*EVERYONE, THE_IRO, THE_IRO])  # fewer alerts, more done to each
responders = st.sampled_from([*EVERYONE, *[THE_RESPONSIBLE] * 8, THE_IRO])
anyone = st.sampled_from(EVERYONE)
GOOD = "Care plan not shared"
words = st.sampled_from([*[GOOD] * 8, "No response", "x", "   ", ""])
day_offsets = st.integers(-3, 30)  # days from today (local): past, today, weekends, holidays
stage_choice = st.sampled_from(
    [*[None] * 6, *KEYS, CAFCASS, "new", "resolved", "stage9", ""]
)
escalate_to = st.sampled_from([*[None] * 4, *KEYS, CAFCASS, "bogus"])
themes = st.one_of(st.none(), st.sampled_from([*TAXONOMY.keys, "drift"]))
# An agreed action: (text, days from today, whether to move that day on to a working day,
# owner). Mostly valid, so that a response with actions gets through often enough.
actions_in = st.lists(
    st.tuples(
        st.sampled_from(["Share the report", "Arrange contact", "Visit", " "]),
        day_offsets,
        st.sampled_from([True, True, True, False]),
        st.one_of(st.none(), st.none(), st.sampled_from(ORG_PEOPLE), anyone),
    ),
    max_size=3,
)

EXPECTED_KINDS: dict[str, list[str]] = {
    "raise": ["raised"],
    "escalate": ["escalated"],
    "resolve": ["resolved"],
    "withdraw": ["withdrawn"],
    "refer": ["referred"],
    "hold": ["held"],
    "resume": ["resumed"],
    "extend": ["extended"],
    "reopen": ["reopened"],
    "action_done": ["action_done"],
}

Snapshot = tuple[Any, ...]


@settings(
    max_examples=60, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
class AlertLadder(RuleBasedStateMachine):
    alerts = Bundle("alerts")

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory(prefix="drp-prop-")
        self.engine = db.make_engine(f"sqlite:///{Path(self._dir.name) / 'drp.db'}")
        db.upgrade(self.engine)
        with db.transaction(self.engine) as session:
            load_org(session, ORG_FILE, PROTOCOL)
        self.tables = sorted(inspect(self.engine).get_table_names())
        self.now = START

    def teardown(self) -> None:
        self.engine.dispose()
        self._dir.cleanup()

    # -- helpers ------------------------------------------------------------------------------
    @property
    def today(self) -> date:
        return local_date(self.now, LONDON)

    def _snapshot(self) -> Snapshot:
        """Every row of every table (alerts with their versions, events, actions, the access
        log and whatever else a command might write), read straight from the database."""
        with self.engine.connect() as conn:
            return tuple(
                (name, conn.execute(text(f'SELECT * FROM "{name}" ORDER BY 1')).all())
                for name in self.tables
            )

    def _who(self, who: str, alert_id: int | None = None, child: str | None = None) -> str:
        """A username for a placeholder, read from the database as it is now."""
        if who not in (THE_IRO, THE_RESPONSIBLE):
            return who
        if child is not None:
            return IRO_OF[child]
        with Session(self.engine) as s:
            alert = s.get(Alert, alert_id)
            assert alert is not None
            if who == THE_IRO:
                person = s.get(Person, alert.iro_id)
            else:
                child_row = s.get(Child, alert.child_id)
                assert child_row is not None
                # Once referred, the alert's stage is not on the ladder: ask the first stage's.
                stage = alert.stage if alert.stage in KEYS else KEYS[0]
                pid = Line.of(s, child_row).holder(PROTOCOL.stage(stage).responsible)
                person = s.get(Person, pid) if pid is not None else None
            return person.username if person is not None else NOBODY

    def _max_event_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM event")).scalar_one())

    def _run(
        self, verb: str, username: str, step: timedelta, call: Callable[[AlertService], Any],
        *, alert_id: int | None = None, kinds: list[str] | None = None,
    ) -> int | None:
        """One unit of work as of `step` after the last one. Returns the alert's id when the
        command succeeded, None when it was refused (after checking it changed nothing)."""
        self.now += step
        before = self._snapshot()
        last_event = self._max_event_id()
        try:
            with db.transaction(self.engine) as session:
                svc = AlertService(
                    session, protocol=PROTOCOL, calendar=CALENDAR, clock=FixedClock(self.now),
                    tz=LONDON, taxonomy=TAXONOMY,
                )
                result = call(svc)
                done_id = int(result.id)
        except DrpError as exc:
            event(f"{verb}: {type(exc).__name__}")
            after = self._snapshot()
            assert after == before, f"{verb} by {username} was refused ({exc}) but changed rows"
            return None

        event(f"{verb}: ok")
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
        if kinds is None:
            kinds = list(EXPECTED_KINDS[verb])
            if verb == "escalate" and username == SYSTEM:
                kinds = ["auto_escalated"]
        assert [e.kind for e in events] == kinds, (verb, username)
        return done_id

    # -- commands ------------------------------------------------------------------------------
    @initialize(
        target=alerts, child=st.sampled_from(CHILDREN),
        stage=st.one_of(st.none(), st.sampled_from(KEYS)),
    )
    def first_alert(self, child: str, stage: str | None) -> int:
        """Every run starts with one alert raised properly by the child's IRO."""
        iro = IRO_OF[child]
        aid = self._run(
            "raise", iro, timedelta(0), lambda s: s.raise_alert(iro, child, GOOD, stage=stage)
        )
        assert aid is not None
        return aid

    @rule(
        target=alerts, step=steps, who=raisers, child=st.sampled_from(CHILDREN),
        summary=words, stage=stage_choice, theme=themes,
    )
    def raise_alert(
        self, step: timedelta, who: str, child: str, summary: str, stage: str | None,
        theme: str | None,
    ) -> Any:
        who = self._who(who, child=child)
        aid = self._run(
            "raise", who, step,
            lambda s: s.raise_alert(who, child, summary, stage=stage, theme=theme),
        )
        return multiple() if aid is None else aid

    @rule(alert=alerts, step=steps, who=responders, message=words, actions=actions_in)
    def respond(
        self, alert: int, step: timedelta, who: str, message: str,
        actions: list[tuple[str, int, bool, str | None]],
    ) -> None:
        who = self._who(who, alert)

        def call(s: AlertService) -> Alert:
            acts = []
            for what, offset, to_working_day, owner in actions:
                due = s.today + timedelta(days=offset)
                if to_working_day:
                    due = CALENDAR.next_working_day(max(due, s.today))
                acts.append(ActionIn(what, due, owner))
            return s.respond(alert, who, message, acts)

        kinds = ["responded"] + ["action_agreed"] * len(actions)
        self._run("respond", who, step, call, alert_id=alert, kinds=kinds)

    @rule(alert=alerts, step=steps, who=people, reason=words, to=escalate_to)
    def escalate(self, alert: int, step: timedelta, who: str, reason: str, to: str | None) -> None:
        who = self._who(who, alert)
        self._run("escalate", who, step, lambda s: s.escalate(alert, who, reason, to=to),
                  alert_id=alert)

    @rule(alert=alerts, step=steps, who=people, outcome=words)
    def resolve(self, alert: int, step: timedelta, who: str, outcome: str) -> None:
        who = self._who(who, alert)
        self._run("resolve", who, step, lambda s: s.resolve(alert, who, outcome), alert_id=alert)

    @rule(alert=alerts, step=steps, who=people, reason=words)
    def withdraw(self, alert: int, step: timedelta, who: str, reason: str) -> None:
        who = self._who(who, alert)
        self._run("withdraw", who, step, lambda s: s.withdraw(alert, who, reason), alert_id=alert)

    @rule(alert=alerts, step=steps, who=people, reason=words)
    def refer(self, alert: int, step: timedelta, who: str, reason: str) -> None:
        who = self._who(who, alert)
        self._run("refer", who, step, lambda s: s.refer(alert, who, reason), alert_id=alert)

    @rule(
        alert=alerts, step=steps, who=people, reason=words,
        until=st.one_of(st.none(), day_offsets),
    )
    def hold(
        self, alert: int, step: timedelta, who: str, reason: str, until: int | None
    ) -> None:
        who = self._who(who, alert)

        def call(s: AlertService) -> Alert:
            day = None if until is None else s.today + timedelta(days=until)
            return s.hold(alert, who, reason, until=day)

        self._run("hold", who, step, call, alert_id=alert)

    @rule(alert=alerts, step=steps, who=people, comment=st.one_of(st.none(), words))
    def resume(self, alert: int, step: timedelta, who: str, comment: str | None) -> None:
        who = self._who(who, alert)
        self._run("resume", who, step, lambda s: s.resume(alert, who, comment), alert_id=alert)

    @rule(alert=alerts, step=steps, who=people, until=day_offsets, reason=words)
    def extend(self, alert: int, step: timedelta, who: str, until: int, reason: str) -> None:
        who = self._who(who, alert)

        def call(s: AlertService) -> Alert:
            return s.extend(alert, who, s.today + timedelta(days=until), reason)

        self._run("extend", who, step, call, alert_id=alert)

    @rule(alert=alerts, step=steps, who=people, reason=words)
    def reopen(self, alert: int, step: timedelta, who: str, reason: str) -> None:
        who = self._who(who, alert)
        self._run("reopen", who, step, lambda s: s.reopen(alert, who, reason), alert_id=alert)

    @rule(
        alert=alerts, step=steps, who=responders, no=st.integers(0, 4),
        comment=st.one_of(st.none(), words),
    )
    def action_done(
        self, alert: int, step: timedelta, who: str, no: int, comment: str | None
    ) -> None:
        who = self._who(who, alert)
        self._run("action_done", who, step, lambda s: s.action_done(alert, no, who, comment),
                  alert_id=alert)

    @rule(step=steps, who=anyone, verb=st.sampled_from(sorted(EXPECTED_KINDS)))
    def no_such_alert(self, step: timedelta, who: str, verb: str) -> None:
        calls: dict[str, Callable[[AlertService], Any]] = {
            "raise": lambda s: s.raise_alert(who, "R999", "No such child"),
            "escalate": lambda s: s.escalate(MISSING_ALERT, who, "x"),
            "resolve": lambda s: s.resolve(MISSING_ALERT, who, "x"),
            "withdraw": lambda s: s.withdraw(MISSING_ALERT, who, "x"),
            "refer": lambda s: s.refer(MISSING_ALERT, who, "x"),
            "hold": lambda s: s.hold(MISSING_ALERT, who, "x"),
            "resume": lambda s: s.resume(MISSING_ALERT, who),
            "extend": lambda s: s.extend(MISSING_ALERT, who, date(2027, 12, 1), "x"),
            "reopen": lambda s: s.reopen(MISSING_ALERT, who, "x"),
            "action_done": lambda s: s.action_done(MISSING_ALERT, 1, who),
        }
        call = calls[verb]

        def expect_not_found(s: AlertService) -> Any:
            try:
                call(s)
            except NotFound:
                raise
            except DrpError as exc:
                raise AssertionError(f"{verb} on a missing alert by {who}: {exc!r}") from exc
            raise AssertionError(f"{verb} on a missing alert by {who} did not raise NotFound")

        assert self._run(verb, who, step, expect_not_found) is None

    # -- reads: they must not fail other than by DrpError, and write no event -----------------
    @rule(alert=alerts, step=steps, who=anyone)
    def show(self, alert: int, step: timedelta, who: str) -> None:
        self.now += step
        before = self._max_event_id()
        try:
            with db.transaction(self.engine) as session:
                svc = AlertService(
                    session, protocol=PROTOCOL, calendar=CALENDAR, clock=FixedClock(self.now),
                    tz=LONDON, taxonomy=TAXONOMY,
                )
                view = svc.show(alert, who)
                logged = session.exec(select(Event).where(Event.alert_id == alert)).all()
                assert len(view.events) == len(logged)
        except DrpError:
            pass
        assert self._max_event_id() == before

    @rule(
        step=steps, who=anyone,
        status=st.sampled_from([None, "open", "overdue", "closed", "bogus"]),
    )
    def list_alerts(self, step: timedelta, who: str, status: str | None) -> None:
        self.now += step
        before = self._max_event_id()
        try:
            with db.transaction(self.engine) as session:
                svc = AlertService(
                    session, protocol=PROTOCOL, calendar=CALENDAR, clock=FixedClock(self.now),
                    tz=LONDON, taxonomy=TAXONOMY,
                )
                svc.list(who, status)
        except DrpError:
            pass
        assert self._max_event_id() == before

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def the_database_is_consistent(self) -> None:
        with Session(self.engine) as s:
            alerts = list(s.exec(select(Alert).order_by(col(Alert.id))))
            events = list(s.exec(select(Event).order_by(col(Event.id))))
            actions = list(s.exec(select(Action).order_by(col(Action.id))))
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
            # One current stage, on the ladder, or Cafcass exactly when referred.
            assert alert.status in STATUSES, (aid, alert.status)
            if alert.status == "referred":
                assert alert.stage == CAFCASS, (aid, alert.stage)
            else:
                assert alert.stage in KEYS, (aid, alert.status, alert.stage)
            assert not alert.on_hold or alert.status == "open", aid
            assert (alert.held_since is not None) == alert.on_hold, aid
            assert (alert.closed_at is None) == (alert.status == "open"), aid

            # The event log: 1..n, in order, in time, starting with `raised`.
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

            # Due dates fall on working days.
            if alert.stage_due is not None:
                assert CALENDAR.is_working_day(alert.stage_due), (aid, alert.stage_due)
            assert CALENDAR.is_working_day(alert.resolution_due), (aid, alert.resolution_due)

            # Actions: numbered 1..m, due on working days, done iff an event says so.
            acts = acts_of.get(aid, [])
            assert sorted(a.no for a in acts) == list(range(1, len(acts) + 1)), aid
            done = {e.data["no"] for e in log if e.kind == "action_done" and e.data}
            agreed = [e for e in log if e.kind == "action_agreed"]
            assert len(agreed) == len(acts), aid
            for a in acts:
                assert CALENDAR.is_working_day(a.due), (aid, a.no, a.due)
                assert (a.done_at is not None) == (a.no in done), (aid, a.no)


TestAlertLadder = AlertLadder.TestCase
