"""Each person's work lists and their counts in the navigation (issue 16): the IRO's
*Awaiting my decision*, the managers' *Responded, actions open*, an action owner's *My
actions*; the filters (teams by name, Cafcass, on hold, awaiting the IRO); and every list's
CSV holding exactly the rows on screen."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from drp import db
from drp.alerts import ActionIn
from drp.alerts.figures import Figures
from drp.alerts.queries import Queries
from drp.models import AccessLog, Alert
from drp.web.routes import alerts as alert_routes
from tests.conftest import sign_in

DUE = date(2027, 3, 12)  # a working day after the clock's 1 March 2027


def do(rt: Any, clock: Any, fn: Any) -> Any:
    with db.transaction(rt.engine) as s:
        return fn(rt.service(s, clock))


def raise_(rt: Any, clock: Any, summary: str, **kw: Any) -> int:
    return int(do(rt, clock, lambda s: s.raise_alert(
        "iro.ada", "R100", summary, theme="permanence_planning", separate=True, **kw).id))


def ids_on(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<a class="govuk-link" href="/alerts/(\d+)">Alert', page)]


def nav_count(page: str, label: str) -> int | None:
    found = re.search(re.escape(label) + r' <span class="drp-count">(\d+)</span>', page)
    return int(found.group(1)) if found else None


def test_the_team_manager_finds_a_responded_alert_and_marks_its_action_done(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock, "Care plan late")
    tm = sign_in(app, "tm.fay")
    page = tm.get("/inbox").text
    assert ids_on(page) == [aid] and nav_count(page, "Awaiting my response") == 1
    assert nav_count(page, "Responded, actions open") == 0
    do(rt, clock, lambda s: s.respond(aid, "tm.fay", "We will review the plan",
                                      [ActionIn("Review the plan", DUE)]))
    page = tm.get("/inbox").text
    assert ids_on(page) == [] and nav_count(page, "Awaiting my response") == 0
    page = tm.get("/responded").text
    assert ids_on(page) == [aid] and nav_count(page, "Responded, actions open") == 1
    assert "Awaiting the IRO&#39;s decision" in page and "East A" in page  # not east-a
    assert nav_count(page, "My actions") == 1
    mine = tm.get("/my-actions").text
    assert "Review the plan" in mine and ids_on(mine) == [aid]
    done = tm.post(f"/alerts/{aid}/actions/1/done", data={"csrf_token": tm.csrf},
                   follow_redirects=False)
    assert done.status_code == 303, done.text
    page = tm.get("/responded").text
    assert ids_on(page) == [] and nav_count(page, "Responded, actions open") == 0
    assert nav_count(page, "My actions") == 0


def test_the_social_worker_owning_an_action_sees_it_under_my_actions(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock, "Visits missed")
    do(rt, clock, lambda s: s.respond(aid, "tm.fay", "Dan will visit",
                                      [ActionIn("Visit the child", DUE, owner="sw.dan"),
                                       ActionIn("Write it up", DUE, owner="sw.dan")]))
    sw = sign_in(app, "sw.dan")
    page = sw.get("/my-actions").text
    assert nav_count(page, "My actions") == 2
    assert "Visit the child" in page and ids_on(page) == [aid, aid] and "12 March 2027" in page
    with Session(rt.engine) as s:  # the alert of the two actions shown, recorded once
        assert [r.alert_id for r in s.exec(select(AccessLog).where(
            AccessLog.actor == "sw.dan", AccessLog.action == "listed"))] == [aid]
    rows = list(csv.DictReader(io.StringIO(sw.get("/my-actions.csv").text)))
    assert [(r["alert"], r["action"], r["text"]) for r in rows] == [
        (str(aid), "1", "Visit the child"), (str(aid), "2", "Write it up")]
    # Someone else's action is not theirs.
    assert "Visit the child" not in sign_in(app, "sw.eve").get("/my-actions").text
    clock.move(days=14)  # 15 March: overdue (a new day, a new session)
    assert re.search(r'govuk-tag--red">\s*Overdue', sign_in(app, "sw.dan").get("/my-actions").text)
    # Withdrawn, its actions are nobody's work any more (due.action_tracked, as the
    # reminders and overdue notices already judged): gone from the list and the count.
    do(rt, clock, lambda s: s.withdraw(aid, "iro.ada", "Raised in error"))
    page = sign_in(app, "sw.dan").get("/my-actions").text
    assert "Visit the child" not in page and nav_count(page, "My actions") == 0


def test_the_iro_sees_what_awaits_their_decision(web: Any) -> None:
    app, clock, rt = web
    answered = raise_(rt, clock, "Answered")
    held = raise_(rt, clock, "Held")
    waiting = raise_(rt, clock, "Still waiting", due_on=date(2027, 3, 3))
    far_hold = raise_(rt, clock, "Held long")
    do(rt, clock, lambda s: s.respond(answered, "tm.fay", "Done", []))
    do(rt, clock, lambda s: s.hold(held, "iro.ada", "Court hearing", date(2027, 3, 5)))
    do(rt, clock, lambda s: s.hold(far_hold, "iro.ada", "Court hearing", date(2027, 3, 26)))
    iro = sign_in(app, "iro.ada")
    page = iro.get("/awaiting-decision").text
    assert sorted(ids_on(page)) == sorted([answered, held])
    assert nav_count(page, "Awaiting my decision") == 2
    assert "Response received" in page and "Hold ending" in page
    assert "On hold until 5 March 2027" in page
    clock.move(days=3)  # 4 March: the informal date of `waiting` (3 March) has passed
    iro = sign_in(app, "iro.ada")
    page = iro.get("/awaiting-decision").text
    assert sorted(ids_on(page)) == sorted([answered, held, waiting])
    assert nav_count(page, "Awaiting my decision") == 3
    # A filtered list: fewer rows, the count still the whole list's.
    page = iro.get("/awaiting-decision?team=west-a").text
    assert ids_on(page) == [] and nav_count(page, "Awaiting my decision") == 3
    page = iro.get("/awaiting-decision?status=on_hold").text
    assert ids_on(page) == [held] and nav_count(page, "Awaiting my decision") == 3
    # My alerts shows the current due date: the held one's hold end, not its stage date.
    mine = iro.get("/my-alerts").text
    assert "On hold until 26 March 2027" in mine
    # Another IRO's list is theirs alone.
    assert ids_on(sign_in(app, "iro.ben").get("/awaiting-decision").text) == []
    # The counts show no record, so a page's counts write nothing to the access log (the
    # list itself is audited, with the ids shown).
    with Session(rt.engine) as s:
        before = len(s.exec(select(AccessLog)).all())
    assert "Awaiting my decision" in iro.get("/alerts/new").text  # the raise form's nav
    with Session(rt.engine) as s:
        assert len(s.exec(select(AccessLog)).all()) == before


def test_filters_offer_team_names_cafcass_and_the_new_statuses(web: Any) -> None:
    app, clock, rt = web
    plain = raise_(rt, clock, "Plain")
    held = raise_(rt, clock, "Held")
    answered = raise_(rt, clock, "Answered")
    referred = raise_(rt, clock, "Referred")
    do(rt, clock, lambda s: s.hold(held, "iro.ada", "Court", date(2027, 3, 5)))
    do(rt, clock, lambda s: s.respond(answered, "tm.fay", "Done", []))
    do(rt, clock, lambda s: s.refer(referred, "iro.ada", "No resolution",
                                    legal_advice="Legal services (J. Okoro)"))
    irom = sign_in(app, "irom.cat")
    page = irom.get("/alerts").text
    assert re.search(r'<option value="east-a"[^>]*>East A</option>', page)
    assert re.search(r'<select class="govuk-select[^"]*" id="team" name="team"', page)
    assert re.search(r'<option value="cafcass"[^>]*>Referral to Cafcass</option>', page)
    assert ids_on(irom.get("/alerts?status=on_hold").text) == [held]
    assert ids_on(irom.get("/alerts?status=awaiting_iro").text) == [answered]
    assert ids_on(irom.get("/alerts?stage=cafcass").text) == [referred]
    assert plain in ids_on(irom.get("/alerts?team=east-a").text)
    assert ids_on(irom.get("/alerts?team=west-a").text) == []


def test_outstanding_csv_holds_exactly_the_rows_on_screen(web: Any) -> None:
    app, clock, rt = web
    kept = raise_(rt, clock, "Open one")
    held = raise_(rt, clock, "Held one")
    gone = raise_(rt, clock, "Withdrawn one")
    answered = raise_(rt, clock, "Answered one")
    do(rt, clock, lambda s: s.hold(held, "iro.ada", "Court", date(2027, 3, 5)))
    do(rt, clock, lambda s: s.withdraw(gone, "iro.ada", "Raised in error"))
    do(rt, clock, lambda s: s.respond(answered, "tm.fay", "Done", []))
    clock.move(days=1)  # (the move comes before signing in: sessions last 12 hours)
    hos = sign_in(app, "hos.ivy")
    for query in ("", "?team=east-a", "?status=on_hold", "?status=awaiting_iro",
                  "?stage=informal&theme=permanence_planning"):
        page = hos.get(f"/outstanding{query}").text
        link = re.search(r'href="(/outstanding\.csv[^"]*)"', page)
        assert link, page
        rows = list(csv.DictReader(io.StringIO(
            hos.get(link.group(1).replace("&amp;", "&")).text)))
        assert [int(r["id"]) for r in rows] == ids_on(page), query
    page = hos.get("/outstanding").text
    assert sorted(ids_on(page)) == sorted([kept, held, answered])  # not the withdrawn one
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(
        hos.get("/outstanding.csv").text))}
    assert rows[held]["state"] == "on hold" and rows[held]["current_due"] == "2027-03-05"
    assert rows[answered]["state"] == "awaiting the IRO's decision"
    assert rows[answered]["responded_on"] == "2027-03-01"
    assert rows[kept]["days_open"] == "1" and rows[kept]["team_name"] == "East A"
    assert rows[kept]["iro_name"] == "Ada Iro"


def test_the_app_registers_the_navigation_counts(web: Any) -> None:
    """drp.web.app must put `nav_counts` among the templates' globals for base.html."""
    app, _clock, _rt = web
    assert app.state.drp.templates.env.globals.get("nav_counts") is alert_routes.nav_counts


USERNAMES = ("iro.ada", "iro.ben", "irom.cat", "sw.dan", "sw.eve", "tm.fay", "tm.gus",
             "sm.hal", "hos.ivy", "hos.jon", "ad.kim", "dcs.lou")
TEAM_KEYS = ("east-a", "west-a")


def visible_text(page: str) -> str:
    """What a reader sees: the page without its tags (attribute values are not shown)."""
    body = page.split("<body", 1)[1]
    return re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", " ", body, flags=re.S))


@pytest.mark.parametrize("who", ["iro.ada", "tm.fay", "sw.dan", "hos.ivy", "irom.cat"])
def test_no_list_shows_a_username_or_a_team_key(web: Any, who: str) -> None:
    """People by name and teams by name on every list, the child's page and the figures
    (issue 16): an alert at each state, an action owned by the social worker."""
    app, clock, rt = web
    answered = raise_(rt, clock, "Answered")
    do(rt, clock, lambda s: s.respond(answered, "tm.fay", "Dan will visit",
                                      [ActionIn("Visit the child", DUE, owner="sw.dan")]))
    held = raise_(rt, clock, "Held")
    do(rt, clock, lambda s: s.hold(held, "iro.ada", "Court", date(2027, 3, 5)))
    acked = raise_(rt, clock, "Acknowledged")
    do(rt, clock, lambda s: s.acknowledge(acked, "tm.fay"))
    raise_(rt, clock, "Plain")
    client = sign_in(app, who)
    shown = 0
    for url in (*alert_routes.LISTS, "/children/R100", "/figures", "/search?q=R1"):
        page = client.get(url, follow_redirects=True)
        if page.status_code != 200:
            continue
        text = visible_text(page.text)
        shown += len(ids_on(page.text))
        for word in (*USERNAMES, *TEAM_KEYS):
            assert not re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w-])", text), (url, word)
    assert shown > 0


def test_a_closed_alert_in_a_list_says_when_it_closed_and_how_long_it_took(web: Any) -> None:
    """Not "None" under Responsible and Due: "Closed <date>" and "in N working days", the
    working days open as the list's CSV gives them (days_open)."""
    app, clock, rt = web
    gone = raise_(rt, clock, "Withdrawn one")
    clock.move(days=7)  # to Monday 8 March 2027: five working days
    do(rt, clock, lambda s: s.withdraw(gone, "iro.ada", "Raised in error"))
    iro = sign_in(app, "iro.ada")
    page = iro.get("/alerts").text
    row = page.split(f'href="/alerts/{gone}">Alert', 1)[1].split("</tr>", 1)[0]
    cell = {label: re.sub(r"<[^>]+>", "", text).strip() for label, text in re.findall(
        r'data-label="(\w+)"><div>(.*?)</div></td>', row, re.S)}
    days = next(csv.DictReader(io.StringIO(iro.get("/alerts.csv").text)))["days_open"]
    assert cell["Responsible"] == "Closed 8 March 2027", cell
    assert cell["Due"] == f"in {days} working days" and days == "5", (cell, days)
    assert "None" not in row


def test_a_long_list_shows_fifty_a_page_and_records_as_shown_only_those(
        web: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """A list of 56 alerts: two pages of 50 and 6, in one order that the CSV (every row)
    keeps; each page view records a `listed` row for each alert on that page and no other
    (the access log says who saw which alert, not every alert of a list they did not page
    through), and makes the views of only those (a page's cost is its rows', not the
    list's)."""
    app, clock, rt = web
    made: list[int] = []
    view = Queries._view
    monkeypatch.setattr(Queries, "_view", lambda self, alert, *a, **kw: (
        made.append(alert.id), view(self, alert, *a, **kw))[1])
    # The alerts the list reads whole (as models): only its page's rows; the list is
    # filtered and put in order from a few columns of each (`Queries._standings`).
    whole: list[int] = []
    listing: list[bool] = []
    alert_list = Figures.alert_list

    def counted(self: Figures, *a: Any, **kw: Any) -> Any:
        listing.append(True)
        try:
            return alert_list(self, *a, **kw)
        finally:
            listing.clear()

    monkeypatch.setattr(Figures, "alert_list", counted)

    def loaded(alert: Alert, _context: Any) -> None:
        if listing:
            whole.append(alert.id or 0)

    event.listen(Alert, "load", loaded)
    request.addfinalizer(lambda: event.remove(Alert, "load", loaded))
    raised = [raise_(rt, clock, f"Concern {n}") for n in range(56)]
    do(rt, clock, lambda s: s.hold(raised[3], "iro.ada", "Court", date(2027, 3, 5)))
    irom = sign_in(app, "irom.cat")

    def listed(query: str) -> tuple[list[int], list[int], list[str]]:
        """The ids on the page, those recorded as listed by its view, and its list row."""
        with Session(rt.engine) as s:
            before = max([r.id or 0 for r in s.exec(select(AccessLog))] or [0])
        page = irom.get(f"/alerts{query}")
        assert page.status_code == 200, page.text[:2000]
        with Session(rt.engine) as s:
            rows = s.exec(select(AccessLog).where(AccessLog.id > before,  # type: ignore[operator]
                                                  AccessLog.actor == "irom.cat")).all()
        return (ids_on(page.text), [r.alert_id or 0 for r in rows if r.action == "listed"],
                [r.detail or "" for r in rows if r.action == "list"])

    first, first_listed, (first_row,) = listed("")
    made.clear()
    whole.clear()
    second, second_listed, (second_row,) = listed("?page=2")
    assert sorted(made) == sorted(second), "the views of page 2's rows, and no others"
    assert sorted(whole) == sorted(second), "page 2's rows read whole, and no others"
    assert len(first) == 50 and len(second) == 6 and set(first + second) == set(raised)
    assert sorted(first_listed) == sorted(first), "page 1 records exactly its rows"
    assert sorted(second_listed) == sorted(second), "page 2 records exactly its rows"
    assert first_row.startswith("50 alerts shown (page 1 of 2), status=all"), first_row
    assert second_row.startswith("6 alerts shown (page 2 of 2)"), second_row
    last, last_listed, _row = listed("?page=99")  # past the end: the last page
    assert last == second and sorted(last_listed) == sorted(second)
    odd, odd_listed, _row = listed("?page=%C2%B2")  # not a page number: the first page
    assert odd == first and sorted(odd_listed) == sorted(first)
    assert first[0] == raised[3]  # the held one's date (5 March) is the soonest shown
    with Session(rt.engine) as s:
        before = max(r.id or 0 for r in s.exec(select(AccessLog)))
    csv_page = irom.get("/alerts.csv")
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(csv_page.text))] == first + second
    with Session(rt.engine) as s:
        rows = s.exec(select(AccessLog).where(AccessLog.id > before)).all()  # type: ignore[operator]
    assert sorted(r.alert_id or 0 for r in rows if r.action == "listed") == sorted(raised)
    (detail,) = [r.detail or "" for r in rows if r.action == "list"]
    assert detail.startswith("56 alerts shown, status=all"), detail  # the CSV: every row
