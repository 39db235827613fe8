"""Correction: the alert's IRO or an IRO manager replaces an inaccurate text with a reason;
the original is kept in the correction record until retention removes it; the correction is
its own event on the timeline; no other event moves and the report's figures do not change
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError
from sqlmodel import col, select

from drp import retention
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.correction import correct
from drp.errors import BadValue, NotFound, NotPermitted
from drp.ladder.protocol import Protocol
from drp.models import Alert, Correction, Event
from drp.reporting.figures import report
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy

from .conftest import LONDON, Run, backends

WRONG = "No care plan: Sam Smith's mother says so"


def timeline(run: Run, alert_id: int) -> list[tuple[Any, ...]]:
    def read(s: AlertService) -> list[tuple[Any, ...]]:
        return [(e.id, e.seq, e.at, e.kind, e.actor, e.from_stage, e.to_stage, e.comment)
                for e in s.s.exec(select(Event).where(Event.alert_id == alert_id)
                                  .order_by(col(Event.seq)))]
    return run("2027-06-01T09:00", read)


def figures(run: Run, protocol: Protocol, calendar: WorkingCalendar) -> str:
    taxonomy = load_taxonomy(CONFIG_DIR / "themes.yaml")
    return json.dumps(run("2027-06-01T09:00", lambda s: report(
        s.s, protocol, calendar, taxonomy, LONDON, date(2027, 3, 1), date(2027, 5, 31))),
        sort_keys=True, default=str)


@pytest.fixture
def case(run: Run) -> int:
    """R100's concern: raised, responded to, escalated, resolved."""
    aid = int(run("2027-03-22T09:00", lambda s: s.raise_alert(
        "iro.ada", "R100", WRONG, detail="Sam Smith's school", impact="Delay")).id)
    run("2027-03-23T10:00", lambda s: s.respond(aid, "tm.fay", "Plan by Friday, says Mrs Smith"))
    run("2027-03-24T10:00", lambda s: s.escalate(aid, "iro.ada", "Still no plan"))
    run("2027-03-30T10:00", lambda s: s.resolve(aid, "iro.ada", "Plan written"))
    return aid


@backends
def test_a_correction_keeps_the_order_and_the_figures_and_shows_on_the_timeline(
        run: Run, org: Engine, case: int, protocol: Protocol,
        calendar: WorkingCalendar) -> None:
    before, figures_before = timeline(run, case), figures(run, protocol, calendar)
    response = next(e for e in before if e[3] == "responded")
    run("2027-04-01T09:00", lambda s: correct(
        s, case, "iro.ada", "summary", "No care plan", "Named the child"))
    run("2027-04-01T09:05", lambda s: correct(
        s, case, "irom.cat", "response", "Plan by Friday", "Named the mother",
        response=response[1]))
    after = timeline(run, case)

    # Every event where it was, when it was, by whom; only two texts replaced.
    assert [e[:7] for e in after[:len(before)]] == [e[:7] for e in before]
    changed = {e[3]: (b[7], e[7]) for b, e in zip(before, after, strict=False) if b[7] != e[7]}
    assert changed == {"raised": (WRONG, "No care plan"),
                       "responded": ("Plan by Friday, says Mrs Smith", "Plan by Friday")}
    # The corrections: events of their own, after the others, with the reasons.
    assert [(e[1], e[3], e[4], e[7]) for e in after[len(before):]] == [
        (len(before) + 1, "corrected", "iro.ada", "Named the child"),
        (len(before) + 2, "corrected", "irom.cat", "Named the mother")]
    assert figures(run, protocol, calendar) == figures_before

    view = run("2027-04-01T10:00", lambda s: s.show(case, "iro.ada"))
    assert view.summary == "No care plan"
    assert "Sam Smith" not in json.dumps(view.public(), default=str).replace(
        "Sam Smith's school", "")  # the detail was not corrected
    kept = run("2027-04-01T10:00", lambda s: [
        (c.field, c.original, c.reason, c.actor, c.event_id) for c in s.s.exec(
            select(Correction).order_by(col(Correction.id)))])
    assert kept == [("summary", WRONG, "Named the child", "iro.ada", before[0][0]),
                    ("response", "Plan by Friday, says Mrs Smith", "Named the mother",
                     "irom.cat", response[0])]

    # Still append-only outside correction and retention.
    with pytest.raises(DatabaseError, match="append-only"), org.begin() as conn:
        conn.execute(text("UPDATE event SET comment = 'again'"))
    with pytest.raises(DatabaseError, match="append-only"), org.begin() as conn:
        conn.execute(text("UPDATE correction SET original = NULL"))

    # The originals go two years after the correction; the corrections stay.
    policy = retention.Policy()
    early = retention.run(org, policy, now=view_at("2029-04-01T08:59"), tz=LONDON)
    assert "corrected_text" not in early.counts
    done = retention.run(org, policy, now=view_at("2029-04-01T09:06"), tz=LONDON)
    assert done.counts["corrected_text"] == 2
    assert run("2029-04-02T09:00", lambda s: [c.original for c in s.s.exec(
        select(Correction))]) == [None, None]
    assert after == timeline(run, case)


def view_at(when: str) -> Any:
    from drp.clock import parse_instant

    return parse_instant(when, LONDON)


@backends
def test_only_the_alerts_iro_or_an_iro_manager_may_correct(run: Run, case: int) -> None:
    events = len(timeline(run, case))
    with pytest.raises(NotPermitted, match="only its IRO"):
        run("2027-04-01T09:00", lambda s: correct(s, case, "tm.fay", "summary", "x", "y"))
    for outsider in ("iro.ben", "admin.max"):  # cannot see the alert at all
        with pytest.raises(NotFound):
            run("2027-04-01T09:00", lambda s, who=outsider: correct(
                s, case, who, "summary", "x", "y"))
    refused = {
        "field": lambda s: correct(s, case, "iro.ada", "outcome", "x", "y"),
        "text": lambda s: correct(s, case, "iro.ada", "summary", WRONG, "y"),
        "reason": lambda s: correct(s, case, "iro.ada", "summary", "x", "  "),
        "response": lambda s: correct(s, case, "iro.ada", "response", "x", "y", response=1),
    }
    for name, attempt in refused.items():
        with pytest.raises(BadValue) as found:
            run("2027-04-01T09:00", attempt)
        assert name in (found.value.field or "") or name in found.value.message, name
    assert len(timeline(run, case)) == events
    assert run("2027-04-01T09:00", lambda s: s.s.get(Alert, case).summary) == WRONG


def test_drp_alert_correct_and_its_refusal_in_one_line(cli: Any) -> None:
    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", WRONG,
        "--now", "2027-03-22T09:00")
    line = cli.refused("alert", "correct", "1", "--field", "summary", "--text", "x",
                       "--reason", "y", "--as", "tm.fay", "--now", "2027-03-23T09:00")
    assert line == ("drp: tm.fay may not correct alert 1: only its IRO (or their recorded"
                    " cover) or an IRO manager may")
    done = cli("alert", "correct", "1", "--field", "summary", "--text", "No care plan",
               "--reason", "Named the child", "--as", "iro.ada", "--now", "2027-03-23T09:00")
    assert done.stdout.strip() == "Alert 1: the summary is corrected."
    shown = cli.json("alert", "show", "1", "--as", "iro.ada", "--now", "2027-03-23T09:01")
    assert shown["summary"] == "No care plan"
    assert [e["kind"] for e in shown["events"]][-1] == "corrected"
    assert cli.rows("SELECT field, original, channel FROM correction") == [
        ("summary", WRONG, "cli")]


def test_the_alert_page_offers_the_correction_to_the_iro_and_the_iro_manager_only(
        web: Any) -> None:
    from drp import db
    from tests.conftest import sign_in

    app, clock, rt = web
    with db.transaction(rt.engine) as s:
        aid = int(rt.service(s, clock).raise_alert("iro.ada", "R100", WRONG, separate=True).id)
    with db.transaction(rt.engine) as s:
        rt.service(s, clock).respond(aid, "tm.fay", "Plan by Friday, says Mrs Smith")
    fay = sign_in(app, "tm.fay")  # sees the alert, may not correct it
    assert 'id="offer-correct"' not in fay.get(f"/alerts/{aid}").text
    assert 'id="do-correct"' not in fay.get(f"/alerts/{aid}?act=correct").text
    refused = fay.post(f"/alerts/{aid}/correct", data={
        "csrf_token": fay.csrf, "field": "summary", "text": "x", "reason": "y"},
        follow_redirects=True)
    assert refused.status_code == 403 and "may not correct" in refused.text

    cat = sign_in(app, "irom.cat")
    assert 'id="offer-correct"' in cat.get(f"/alerts/{aid}").text
    page = cat.get(f"/alerts/{aid}?act=correct").text
    assert 'id="do-correct"' in page and 'value="response:2"' in page
    empty = cat.post(f"/alerts/{aid}/correct", data={
        "csrf_token": cat.csrf, "field": "response:2", "text": "", "reason": ""},
        follow_redirects=True)
    assert empty.status_code == 422 and 'href="#correct-text"' in empty.text
    done = cat.post(f"/alerts/{aid}/correct", data={
        "csrf_token": cat.csrf, "field": "response:2", "text": "Plan by Friday",
        "reason": "Named the mother"}, follow_redirects=True)
    assert done.status_code == 200 and "The text was corrected" in done.text
    assert "Text corrected" in done.text and "Named the mother" in done.text
    assert "says Mrs Smith" not in done.text


def test_who_may_correct_is_the_access_policys_one_rule(
        run: Run, case: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from drp import correction
    from drp.ladder import access
    from drp.models import Child

    assert not hasattr(correction, "may_correct")  # one home: drp.ladder.access
    alert, child = Alert(iro_id=1), Child(iro_id=1)
    iro = access.Actor(id=1, username="iro.ada", name="Ada", roles=frozenset({"iro"}))
    other = access.Actor(id=2, username="iro.ben", name="Ben", roles=frozenset({"iro"}))
    cover = access.Actor(id=3, username="iro.cy", name="Cy", roles=frozenset({"iro"}),
                         covering={1: "iro.ada"})
    manager = access.Actor(id=4, username="irom.cat", name="Cat",
                           roles=frozenset({"iro_manager"}))
    line = access.Actor(id=5, username="tm.fay", name="Fay", roles=frozenset({"team_manager"}))
    assert [access.may_correct(a, alert, child) for a in (iro, other, cover, manager, line)] == [
        True, False, True, True, False]

    # The service, and so the command line and the page, ask the policy.
    monkeypatch.setattr(access, "may_correct", lambda actor, alert, child: False)
    with pytest.raises(NotPermitted, match="only its IRO"):
        run("2027-04-01T09:00", lambda s: correct(s, case, "iro.ada", "summary", "x", "y"))
    assert run("2027-04-01T09:00",
               lambda s: correction.may_correct_alert(s, case, "irom.cat")) is False
