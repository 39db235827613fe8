"""Each alert's plan: for each stage it reaches, when it is answered, escalated (by the IRO, or
by the timescale run), put on hold, resolved or withdrawn; and, rarely, a referral to Cafcass
alongside the local process. Every due date comes from the ladder's rules (drp.ladder.due), as
the service layer will set it. Which alerts climb how far is chosen in year.py. Planning
writes nothing."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ...calendar import WorkingCalendar
from ...ladder import due as rules
from ...ladder.protocol import OverduePolicy, Protocol, Role, Stage
from .organisation import ChildLine, Organisation
from .profiles import Profile
from .words import (
    ACTION_TEXT,
    CAFCASS_NOTES,
    ESCALATE_NO_RESPONSE,
    ESCALATE_REASONS,
    FORMAL_RESPONSES,
    HOLD_REASONS,
    OUTCOMES,
    REFER_REASON,
    RESPONSES,
    WITHDRAW_REASONS,
)

RUN_AT = time(7, 0)  # the morning timescale run


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    at: datetime  # UTC
    alert: int  # index into Plan.alerts
    kind: str  # raise, acknowledge, respond, escalate, hold, resolve, withdraw, refer,
    # cafcass_response, action_done
    actor: str
    text: str = ""
    until: date | None = None  # a hold's end date
    actions: tuple[tuple[str, date], ...] = ()
    action_no: int = 0
    due_on: date | None = None  # raise: the informal due date the IRO chose (None: default)
    advised_on: date | None = None  # refer: the day the legal advice was given
    response: str = ""  # cafcass_response: accepted, declined, proceedings, closed


@dataclass
class AlertPlan:
    index: int
    child: ChildLine
    theme: str
    summary: str
    raised_at: datetime
    depth: int = 0  # index of the last stage it reaches
    outcome: str = "resolved"  # resolved, withdrawn, open
    hold: bool = False
    referred: bool = False  # referred to Cafcass on entering its last stage (concurrent)
    due_on: date | None = None  # the informal due date the IRO chose (None: the default)
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


@dataclass
class _Clock:
    """An alert's clocks as the service layer keeps them, for the ladder's rules to read."""

    formal_since: date | None = None
    resolution_due: date | None = None
    stage_due: date | None = None
    held_since: date | None = None


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

    def stage_steps(self, a: AlertPlan, k: int, entry: datetime, exit_: str, clock: _Clock,
                    hold: bool = False) -> tuple[list[Step], datetime | None, date | None]:
        """What happens at stage `k`, entered at `entry`, until the alert leaves it (exit_:
        escalate, resolved, withdrawn or open). `clock`: the alert's clocks on entering,
        moved on as the service layer will (the formal clock starting at the first formal
        stage). Returns the steps, the instant it enters the next stage (when escalating) and
        the day the timescale run escalates it (when it does)."""
        stage = self.stages[k]
        r = self.rng(a.index, k, exit_)
        cal, iro = self.cal, a.child.iro
        steps: list[Step] = []
        e = self.local_day(entry)
        entered = rules.stage_entry(self.protocol, cal, clock, stage.key, now=entry, today=e,
                                    informal=a.due_on if k == 0 else None)
        clock.formal_since = entered.get("formal_since", clock.formal_since)
        clock.resolution_due = entered.get("resolution_due", clock.resolution_due)
        due = clock.stage_due = entered["stage_due"]
        cursor = entry
        answer_from = e
        # Most managers acknowledge the alert the day it reaches them (so no reminder to);
        # a generator of its own, so the rest of the stage's timeline does not depend on it.
        ack = self.rng(a.index, k, "acknowledge")
        if ack.random() < self.p.acknowledge_share:
            cursor = self.after(ack, cursor, e)
            steps.append(Step(cursor, a.index, "acknowledge",
                              a.child.posts[stage.responsible.value]))
        if hold:
            # On hold before the stage falls due (so before any escalation by the run).
            h = cal.add(e, r.randint(0, max(0, cal.between(e, due) - 1)))
            until = cal.add(h, r.randint(5, 15))
            cursor = self.after(r, cursor, h)
            steps.append(Step(cursor, a.index, "hold", iro, r.choice(HOLD_REASONS), until=until))
            cursor = self.run_instant(until)  # the timescale run resumes it that morning
            clock.held_since = h
            stage_due, clock.resolution_due, _held = rules.after_hold(cal, clock, until)
            assert stage_due is not None
            due = clock.stage_due = stage_due  # the held working days do not count
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
        return steps, None, None

    def referral(self, a: AlertPlan, entry: datetime) -> list[Step]:
        """The IRO refers to Cafcass on the day the alert enters its last stage, before
        anything else happens there, with legal advice taken a few working days before;
        Cafcass answers weeks later. The local process goes on meanwhile."""
        r = self.rng(a.index, a.depth, "refer")
        day = self.local_day(entry)
        at = max(entry + timedelta(minutes=5), self.instant(day, time(8, 0)))
        steps = [Step(at, a.index, "refer", a.child.iro, REFER_REASON,
                      advised_on=self.cal.add(day, -r.randint(1, 5)))]
        reply = self.cal.add(day, r.randint(10, 40))
        note, response = r.choice(CAFCASS_NOTES)
        steps.append(Step(self.instant(reply, time(8, 30)) + timedelta(minutes=r.randint(0, 480)),
                          a.index, "cafcass_response", a.child.iro, note, response=response))
        return steps

    def entries(self, a: AlertPlan, depth: int, ends: list[datetime] | None = None
                ) -> list[datetime]:
        """When the alert would enter each stage up to `depth`, escalating at each; and
        into `ends` (when given), when it would be resolved if resolved at each stage."""
        out = [a.raised_at]
        clock = _Clock()
        for k in range(depth + 1):
            if ends is not None:
                steps, _n, _a = self.stage_steps(a, k, out[-1], "resolved", replace(clock))
                ends.append(next(s.at for s in steps if s.kind == "resolve"))
            if k == depth:
                break
            _steps, nxt, _auto = self.stage_steps(a, k, out[-1], "escalate", clock)
            assert nxt is not None
            out.append(nxt)
        return out

    def build(self, a: AlertPlan) -> None:
        """The alert's steps and automatic escalations, cut at the end of the year."""
        steps = [Step(a.raised_at, a.index, "raise", a.child.iro, a.summary, due_on=a.due_on)]
        autos: list[date] = []
        entry = a.raised_at
        clock = _Clock()
        for k in range(a.depth + 1):
            last = k == a.depth
            if last and a.referred:
                steps += self.referral(a, entry)
            more, nxt, auto = self.stage_steps(a, k, entry, a.outcome if last else "escalate",
                                               clock, hold=a.hold and last)
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
