"""The figures at a glance (/figures, issue 16 point 1): each figure against counts worked out
here by hand from the alerts the test makes, each figure's link to a list of exactly that
many rows, a head of service seeing their own services only, and a few queries whatever the
number of alerts."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from drp import db
from tests.conftest import sign_in

# The story, told on 10 March 2027 (a Wednesday; the week ends on Sunday 14 March).
# key: (child, IRO, raised on, informal due date, what happens after)
# R100 and R101 are East's (hos.ivy), R200 West's (hos.jon).
STORY = {
    "F1": ("R100", "iro.ada", date(2027, 2, 22), date(2027, 2, 26), None),  # overdue
    "F2": ("R200", "iro.ben", date(2027, 2, 19), date(2027, 2, 26), "responded"),
    "M1": ("R100", "iro.ada", date(2027, 3, 1), date(2027, 3, 12), None),  # due this week
    "M2": ("R101", "iro.ben", date(2027, 3, 1), date(2027, 3, 15), "escalated"),  # stage 1,
    # entered 4 March: due 11 March (5 working days), this week
    "M3": ("R200", "iro.ben", date(2027, 3, 1), date(2027, 3, 11), "held"),
    "M4": ("R100", "iro.ada", date(2027, 3, 1), date(2027, 3, 5), "withdrawn"),
    "M5": ("R200", "iro.ben", date(2027, 3, 1), date(2027, 3, 3), None),  # overdue
    "M6": ("R200", "iro.ben", date(2027, 3, 1), date(2027, 3, 15), None),  # next week's
}
TODAY = date(2027, 3, 10)

# Worked out by hand from the story (not by drp's code). Working days open to 10 March:
# raised 22 Feb: 12 (23-26 Feb, 1-5 and 8-10 Mar); 19 Feb: 13; 1 Mar: 7.
EXPECTED = {
    "irom.cat": {"open": 7, "overdue": 2, "due this week": 2, "on hold": 1,
                 "average working days open": "8.6",  # (12 + 13 + 7 * 5) / 7
                 "raised this month": 6, "raised last month": 2,
                 "stages": {"Informal resolution": 6, "Stage 1: Team manager": 1}},
    "hos.ivy": {"open": 3, "overdue": 1, "due this week": 2, "on hold": 0,
                "average working days open": "8.7",  # (12 + 7 + 7) / 3
                "raised this month": 3, "raised last month": 1,
                "stages": {"Informal resolution": 2, "Stage 1: Team manager": 1}},
    "hos.jon": {"open": 4, "overdue": 1, "due this week": 0, "on hold": 1,
                "average working days open": "8.5",  # (13 + 7 + 7 + 7) / 4
                "raised this month": 3, "raised last month": 1,
                "stages": {"Informal resolution": 4, "Stage 1: Team manager": 0}},
}
EAST = {"F1", "M1", "M2", "M4"}
WEST = {"F2", "M3", "M5", "M6"}


def do(rt: Any, clock: Any, fn: Any) -> Any:
    with db.transaction(rt.engine) as s:
        return fn(rt.service(s, clock))


def at(clock: Any, day: date) -> None:
    clock.instant = clock.instant.replace(year=day.year, month=day.month, day=day.day)


def tell(rt: Any, clock: Any) -> dict[str, int]:
    ids: dict[str, int] = {}
    for key, (child, iro, raised, due_on, _then) in sorted(STORY.items(), key=lambda i: i[1][2]):
        at(clock, raised)
        ids[key] = int(do(rt, clock, lambda s, c=child, i=iro, d=due_on, k=key: s.raise_alert(
            i, c, f"Story {k}", theme="permanence_planning", separate=True, due_on=d).id))
    at(clock, date(2027, 2, 22))
    do(rt, clock, lambda s: s.respond(ids["F2"], "tm.gus", "Done", []))
    at(clock, date(2027, 3, 1))
    do(rt, clock, lambda s: s.record_good_practice("iro.ada", "R100", "Good work"))  # not a concern
    do(rt, clock, lambda s: s.hold(ids["M3"], "iro.ben", "Court hearing", date(2027, 3, 19)))
    at(clock, date(2027, 3, 2))
    do(rt, clock, lambda s: s.withdraw(ids["M4"], "iro.ada", "Raised in error"))
    at(clock, date(2027, 3, 4))
    do(rt, clock, lambda s: s.escalate(ids["M2"], "iro.ben", "No progress", to="stage1"))
    at(clock, TODAY)
    return ids


def figures_on(page: str) -> dict[str, tuple[int | str, str]]:
    """Each figure on the page: label -> (number, link)."""
    found = re.findall(r'<a class="govuk-link[^"]*" href="([^"]+)"><span[^>]*>([^<]+)</span>'
                       r' ([^<]+)</a>', page)
    return {label.strip(): (int(n) if n.isdigit() else n, href.replace("&amp;", "&"))
            for href, n, label in found}


def stages_on(page: str) -> dict[str, tuple[int, str]]:
    found = re.findall(r'<th scope="row" class="govuk-table__header" data-label="Stage"><div>'
                       r'([^<]+)</div></th>\s*<td[^>]*><div><a class="govuk-link" href="([^"]+)">'
                       r'(\d+)<', page)
    return {title: (int(n), href.replace("&amp;", "&")) for title, href, n in found}


def listed(client: Any, href: str) -> list[int]:
    page = client.get(href)
    assert page.status_code == 200, (href, page.text[:500])
    ids = [int(i) for i in re.findall(r'<a class="govuk-link" href="/alerts/(\d+)">Alert',
                                      page.text)]
    caption = re.search(r"(\d+) alerts?</caption>", page.text)
    assert (int(caption.group(1)) if caption else 0) == len(ids), href
    return ids


@pytest.mark.parametrize("who", sorted(EXPECTED))
def test_each_figure_is_right_and_links_to_a_list_of_exactly_its_alerts(web: Any, who: str
                                                                        ) -> None:
    app, clock, rt = web
    ids = tell(rt, clock)
    client = sign_in(app, who)
    page = client.get("/figures")
    assert page.status_code == 200, page.text
    shown = figures_on(page.text)
    want = EXPECTED[who]
    for label in ("open", "overdue", "due this week", "on hold", "average working days open",
                  "raised this month", "raised last month"):
        assert shown[label][0] == want[label], (who, label, shown[label])
    for label in ("open", "overdue", "due this week", "on hold", "raised this month",
                  "raised last month"):
        assert len(listed(client, shown[label][1])) == want[label], (who, label)
    stages = stages_on(page.text)
    for title, count in want["stages"].items():  # type: ignore[union-attr]
        assert stages[title][0] == count, (who, title)
        assert len(listed(client, stages[title][1])) == count, (who, title)
    # The lists behind the figures are the alerts of the story, by name.
    by_id = {v: k for k, v in ids.items()}
    overdue = {by_id[i] for i in listed(client, shown["overdue"][1])}
    assert overdue <= {"F1", "M5"}
    due = {by_id[i] for i in listed(client, shown["due this week"][1])}
    assert due <= {"M1", "M2"}
    raised = {by_id[i] for i in listed(client, shown["raised this month"][1])}
    assert raised <= {"M1", "M2", "M3", "M4", "M5", "M6"}  # the withdrawn one too; no good practice
    assert "Good work" not in client.get(shown["raised this month"][1]).text


@pytest.mark.parametrize(("who", "theirs", "others"), [("hos.ivy", EAST, WEST),
                                                       ("hos.jon", WEST, EAST)])
def test_a_head_of_service_sees_figures_of_their_services_only(web: Any, who: str,
                                                               theirs: set[str],
                                                               others: set[str]) -> None:
    app, clock, rt = web
    ids = tell(rt, clock)
    client = sign_in(app, who)
    shown = figures_on(client.get("/figures").text)
    seen: set[int] = set()
    for _n, href in shown.values():
        seen |= set(listed(client, href))
    assert seen <= {ids[k] for k in theirs}
    assert not seen & {ids[k] for k in others}


def test_due_this_week_ends_on_sunday_and_leaves_out_held_and_overdue(web: Any) -> None:
    app, clock, rt = web
    ids = tell(rt, clock)
    clock.move(days=5)  # Monday 15 March: a new week; M2 (11 March) and M1 (12) now overdue
    client = sign_in(app, "irom.cat")
    shown = figures_on(client.get("/figures").text)
    assert shown["overdue"][0] == 4  # F1, M5, M1, M2
    assert shown["due this week"][0] == 1  # M6, due today
    assert listed(client, shown["due this week"][1]) == [ids["M6"]]
    assert set(listed(client, "/alerts?status=overdue")) == {
        ids["F1"], ids["M5"], ids["M1"], ids["M2"]}


def test_the_figures_take_a_few_queries_whatever_the_number_of_alerts(web: Any) -> None:
    app, clock, rt = web
    tell(rt, clock)
    client = sign_in(app, "irom.cat")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    def queries() -> int:
        statements.clear()
        event.listen(rt.engine, "before_cursor_execute", count)
        try:
            assert client.get("/figures").status_code == 200
        finally:
            event.remove(rt.engine, "before_cursor_execute", count)
        return len(statements)

    few = queries()
    at(clock, date(2027, 3, 8))
    for n in range(12):
        do(rt, clock, lambda s, n=n: s.raise_alert(
            "iro.ada" if n % 2 else "iro.ben", "R100" if n % 2 else "R200", f"More {n}",
            separate=True))
    at(clock, TODAY)
    client = sign_in(app, "irom.cat")
    assert queries() == few


def test_an_unknown_month_or_kind_is_refused_in_words(web: Any) -> None:
    app, _clock, _rt = web
    client = sign_in(app, "irom.cat")
    for query in ("raised=2027-13", "raised=March", "kind=other"):
        page = client.get(f"/alerts?{query}")
        assert page.status_code in (400, 422), query
        assert "Traceback" not in page.text


def test_raised_last_month_counts_by_the_councils_day(web: Any) -> None:
    """An alert raised at 00:30 on 1 March in London (BST is not yet on: the same in UTC) is
    March's; one at 23:30 on 28 February is February's."""
    app, clock, rt = web
    clock.instant = clock.instant.replace(month=2, day=28, hour=23, minute=30)
    do(rt, clock, lambda s: s.raise_alert("iro.ada", "R100", "Late February", separate=True))
    clock.instant += timedelta(hours=1)
    do(rt, clock, lambda s: s.raise_alert("iro.ada", "R100", "Early March", separate=True))
    at(clock, TODAY)
    client = sign_in(app, "irom.cat")
    shown = figures_on(client.get("/figures").text)
    assert shown["raised this month"][0] == 1 and shown["raised last month"][0] == 1


def test_each_figures_list_downloads_as_a_csv_of_the_same_rows(web: Any) -> None:
    """The CSV link on each figure's list carries its filters (due this week, the month
    raised, the kind) and holds exactly the rows on screen, with response dates and days
    open."""
    import csv
    import io

    app, clock, rt = web
    ids = tell(rt, clock)
    client = sign_in(app, "irom.cat")
    shown = figures_on(client.get("/figures").text)
    for label, (_n, href) in shown.items():
        page = client.get(href).text
        link = re.search(r'href="(/alerts\.csv[^"]*)"', page)
        on_screen = listed(client, href)
        if not on_screen:
            continue
        assert link, (label, href)
        rows = list(csv.DictReader(io.StringIO(client.get(
            link.group(1).replace("&amp;", "&")).text)))
        assert [int(r["id"]) for r in rows] == on_screen, label
    rows = {int(r["id"]): r for r in csv.DictReader(io.StringIO(client.get(
        "/alerts.csv?status=open").text))}
    assert rows[ids["F2"]]["responded_on"] == "2027-02-22"
    assert rows[ids["F1"]]["days_open"] == "12" and rows[ids["M1"]]["days_open"] == "7"


@pytest.mark.parametrize("who", ["irom.cat", "hos.ivy", "iro.ben"])
def test_each_alert_lists_filter_and_order_agree_with_the_alerts_views(web: Any, who: str
                                                                       ) -> None:
    """The alert lists filter and order by each alert's standing before making the views of
    the page's rows (`listing.Standing`): for every status filter, the rows and their order
    are those of the alerts' full views (as `list_alerts` makes them) filtered and ordered
    by the same rules, over the story's overdue, answered, held, escalated, withdrawn and
    good-practice alerts."""
    from drp.alerts.figures import DUE_WEEK, due_by, week_end
    from drp.alerts.listing import list_order

    _app, clock, rt = web
    tell(rt, clock)
    for status in (None, "open", "overdue", "on_hold", "awaiting_iro", "closed", DUE_WEEK):
        def both(s: Any, status: str | None = status) -> tuple[list[int], list[int]]:
            shown, on = s.alert_list(who, status)
            views = s.list_alerts(who, "open" if status == DUE_WEEK else status)
            if status == DUE_WEEK:
                views = [v for v in views if due_by(v, week_end(TODAY))]
            assert on.total == len(shown) == len(views)
            return [v.id for v in shown], [v.id for v in sorted(views, key=list_order)]

        shown, expected = do(rt, clock, both)
        assert shown == expected, (who, status)
    assert do(rt, clock, lambda s: [v.id for v in s.alert_list(who, kind="good_practice")[0]]
              ) == do(rt, clock, lambda s: [v.id for v in s.list_alerts(who)
                                            if v.kind == "good_practice"])


def test_the_referred_figure_counts_the_open_alerts_referred_to_cafcass(web: Any) -> None:
    """Two of the story's alerts referred (one open, one withdrawn after): the figure counts
    the open one, and links to a list of exactly it."""
    app, clock, rt = web
    ids = tell(rt, clock)
    for key in ("F1", "M6"):
        do(rt, clock, lambda s, k=key: s.refer(ids[k], STORY[k][1], "Drift", legal_advice="Ms Lee"))
    do(rt, clock, lambda s: s.withdraw(ids["M6"], "iro.ben", "Raised in error"))
    page = sign_in(app, "irom.cat").get("/figures").text
    cell = re.search(r'href="([^"]+)">(\d+)<span class="govuk-visually-hidden"> open and'
                     r' referred to Cafcass', page)
    assert cell is not None and cell.group(2) == "1", page
    assert listed(sign_in(app, "irom.cat"), cell.group(1).replace("&amp;", "&")) == [ids["F1"]]
