"""The child's page (/children/{ref}), search (/search?q=) and the print view for the child's
file (/alerts/{id}/print), through FastAPI's TestClient on test_web_routes' shared world (its
organisation, signed-in clients and access tables): every role against each child, what each
page shows and hides, and the access-log rows each writes."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session, col, select

from drp.alerts import ActionIn
from drp.models import AccessLog
from tests.test_web_routes import (
    IRO,
    SEES,
    TEAM_MANAGER,
    VISIBLE_CHILDREN,
    WHO,
    World,
    name,
)
from tests.test_web_routes import world as shared_world

# test_web_routes' module fixture: one app, database and signed-in clients for this module.
world = shared_world

ALL_CHILDREN = ("R100", "R101", "R200")


@pytest.fixture(scope="module")
def files(world: World) -> dict[str, int]:
    """Beside the world's open alerts: R100's resolved alert (a response, an action done),
    good practice on R100, an alert of R101 (iro.ben's) linked to R100's open one by the IRO
    manager, and R200's withdrawn alert."""
    due = date(2027, 3, 10)
    past = world.raise_alert("R100", summary="Past alert for R100")
    world.do(lambda s: s.respond(past, TEAM_MANAGER["R100"], "We will review the plan",
                                 [ActionIn("Review the plan", due)]))
    world.do(lambda s: s.action_done(past, 1, TEAM_MANAGER["R100"]))
    world.do(lambda s: s.resolve(past, IRO["R100"], "The plan was reviewed and agreed"))
    good = int(world.do(lambda s: s.record_good_practice(
        IRO["R100"], "R100", "Thorough life-story work").id))
    other = int(world.do(lambda s: s.raise_alert(
        "iro.ben", "R101", "Alert for R101", stage="informal", theme="permanence_planning",
        separate=True).id))
    world.do(lambda s: s.link(world.shared["R100"], other, "irom.cat"))
    gone = world.raise_alert("R200", summary="Withdrawn alert for R200")
    world.do(lambda s: s.withdraw(gone, IRO["R200"], "Raised in error"))
    return {"past": past, "good": good, "R101": other, "withdrawn": gone}


def log_rows(world: World, who: str, action: str) -> list[AccessLog]:
    with Session(world.rt.engine) as s:
        return list(s.exec(select(AccessLog).where(
            AccessLog.actor == who, AccessLog.action == action).order_by(col(AccessLog.id))))


def summaries(child: str) -> list[str]:
    """Text of the child's own alerts that only those who may see it may read."""
    return {"R100": ["Matrix alert for R100", "Past alert for R100", "Thorough life-story"],
            "R101": ["Alert for R101"],
            "R200": ["Matrix alert for R200", "Withdrawn alert for R200"]}[child]


# -- the child's page ------------------------------------------------------------------------
@pytest.mark.parametrize("child", ALL_CHILDREN)
@pytest.mark.parametrize("who", WHO, ids=name)
def test_child_page_answers_as_the_access_policy_says(world: World, files: dict[str, int],
                                                      who: str | None, child: str) -> None:
    """Not signed in: 303 to /login. A child one may not see: 404, the same page as a child
    that does not exist, nothing of the child's in it. Otherwise 200 with its alerts."""
    r = world.page(who, "GET", f"/children/{child}")
    if who is None:
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        return
    if child not in VISIBLE_CHILDREN[who]:
        assert r.status_code == 404, r.text[:500]
        assert "not one you can see" in r.text
        for text in summaries(child):
            assert text not in r.text
        missing = world.page(who, "GET", "/children/R999")
        assert missing.status_code == 404
        return
    assert r.status_code == 200, r.text[:500]
    assert f'<h1 class="govuk-heading-l">Child {child}</h1>' in r.text
    for text in summaries(child):
        assert text in r.text, text


def test_child_page_shows_open_past_good_practice_and_links_by_name(
        world: World, files: dict[str, int]) -> None:
    """Open and past alerts apart (status, stage, raised, due or closed, theme, the IRO by
    name), good practice, and linked alerts the reader may see: the IRO manager's link to
    R101's alert shows to R100's team manager (who sees R101), not to R100's IRO (who does
    not). A reference in any case finds the child."""
    r = world.page("tm.fay", "GET", "/children/r100")
    assert r.status_code == 200, r.text[:500]
    html = r.text
    opened, past = html.split('id="open"')[1].split('id="past"')
    past, good = past.split('id="good-practice"')
    assert "Matrix alert for R100" in opened and "Past alert for R100" not in opened
    assert "Past alert for R100" in past and "Resolved" in past
    assert "Thorough life-story work" in good and "Matrix alert" not in good
    assert "Ada Iro" in html and "iro.ada" not in html and "tm.fay" not in html
    assert "East A" in html and "east-a" not in html  # the team by name
    assert f'href="/alerts/{files["R101"]}"' in opened
    assert f'href="/alerts/{files["R101"]}"' not in world.page(
        "iro.ada", "GET", "/children/R100").text


def test_child_page_is_audited_with_the_alerts_shown(world: World,
                                                     files: dict[str, int]) -> None:
    before = len(log_rows(world, "sw.dan", "view"))
    listed = len(log_rows(world, "sw.dan", "listed"))
    assert world.page("sw.dan", "GET", "/children/R100").status_code == 200
    rows = log_rows(world, "sw.dan", "view")[before:]
    assert len(rows) == 1 and rows[0].alert_id is None, rows
    assert rows[0].detail and "child R100" in rows[0].detail and "GET /children/R100" in rows[0].detail
    shown = {r.alert_id for r in log_rows(world, "sw.dan", "listed")[listed:]}
    assert {world.shared["R100"], files["past"], files["good"]} <= shown
    assert world.shared["R200"] not in shown
    refused = len(log_rows(world, "sw.dan", "refused"))
    assert world.page("sw.dan", "GET", "/children/R200").status_code == 404
    last = log_rows(world, "sw.dan", "refused")[refused:]
    assert len(last) == 1 and "child 'R200'" in (last[0].detail or ""), last


# -- search ----------------------------------------------------------------------------------
def search(world: World, who: str | None, q: str) -> Any:
    return world.page(who, "GET", f"/search?q={q}")


@pytest.mark.parametrize("child", ALL_CHILDREN)
@pytest.mark.parametrize("who", WHO, ids=name)
def test_search_finds_a_child_only_for_those_who_may_see_it(world: World,
                                                            files: dict[str, int],
                                                            who: str | None, child: str) -> None:
    r = search(world, who, child.lower())
    if who is None:
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        return
    if child in VISIBLE_CHILDREN[who]:
        assert (r.status_code, r.headers.get("location")) == (303, f"/children/{child}")
    else:
        assert r.status_code == 200, r.text[:500]
        assert "Nothing found" in r.text and f"/children/{child}" not in r.text


@pytest.mark.parametrize("child", ("R100", "R200"))
@pytest.mark.parametrize("who", WHO, ids=name)
def test_search_by_alert_number_goes_only_to_a_visible_alert(world: World,
                                                             who: str | None, child: str) -> None:
    aid = world.shared[child]
    for q in (str(aid), f"%23{aid}"):  # 12 and #12
        r = search(world, who, q)
        if who is None:
            assert r.status_code == 303 and r.headers["location"].startswith("/login")
        elif who in SEES[child]:
            assert (r.status_code, r.headers.get("location")) == (303, f"/alerts/{aid}")
        else:
            assert r.status_code == 200 and "Nothing found" in r.text, r.text[:500]
            assert f"/alerts/{aid}" not in r.text


def test_search_by_prefix_lists_the_visible_children(world: World) -> None:
    """A reference's start lists the children one may see (two here), or goes to the only
    one; a LIKE wildcard in the text is a character, not a wildcard."""
    r = search(world, "tm.fay", "R1")
    assert r.status_code == 200
    assert re.findall(r'href="/children/(R\d+)"', r.text) == ["R100", "R101"]
    assert search(world, "iro.ada", "R1").headers.get("location") == "/children/R100"
    for q in ("R_00", "R%25", "_"):
        r = search(world, "dcs.lou", q)
        assert r.status_code == 200 and "Nothing found" in r.text, (q, r.text[:500])


@pytest.mark.parametrize("q", ["R100<script>", "R" * 41, "R100 R200", "%C3%A9", "'", ""])
def test_search_is_bounded(world: World, q: str) -> None:
    """Text that cannot be a reference or a number (too long, other characters) reads no
    record: the page says what can be searched for."""
    before = len(log_rows(world, "dcs.lou", "search"))
    r = search(world, "dcs.lou", q)
    assert r.status_code == 200, r.text[:500]
    assert "Search by a child" in r.text and "/children/R" not in r.text
    assert "<script>" not in r.text
    assert len(log_rows(world, "dcs.lou", "search")) == before


def test_search_is_audited_and_a_hidden_alert_is_recorded_as_refused(world: World) -> None:
    refused = len(log_rows(world, "iro.ada", "refused"))
    searched = len(log_rows(world, "iro.ada", "search"))
    search(world, "iro.ada", str(world.shared["R200"]))
    search(world, "iro.ada", "R100")
    rows = log_rows(world, "iro.ada", "search")[searched:]
    assert [r.detail for r in rows] == [
        f"searched '{world.shared['R200']}': nothing found (GET /search)",
        "searched 'R100': child R100 (GET /search)"]
    late = log_rows(world, "iro.ada", "refused")[refused:]
    assert [r.alert_id for r in late] == [world.shared["R200"]]


def test_every_page_has_the_search_form(world: World) -> None:
    for url in ("/my-alerts", f"/alerts/{world.shared['R100']}", "/children/R100"):
        html = world.page("iro.ada", "GET", url).text
        assert re.search(r'<form class="drp-search" method="get" action="/search"', html), url
        assert 'name="q" maxlength="40"' in html
        assert re.search(r'<link rel="stylesheet" href="/static/print.css\?v=\w+" media="print">',
                         html)


# -- the print view --------------------------------------------------------------------------
@pytest.mark.parametrize("child", ("R100", "R200"))
@pytest.mark.parametrize("who", WHO, ids=name)
def test_print_view_answers_as_the_access_policy_says(world: World, who: str | None,
                                                      child: str) -> None:
    aid = world.shared[child]
    r = world.page(who, "GET", f"/alerts/{aid}/print")
    if who is None:
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
    elif who in SEES[child]:
        assert r.status_code == 200, r.text[:500]
        assert f"Matrix alert for {child}" in r.text
    else:
        assert r.status_code == 404 and f"Matrix alert for {child}" not in r.text


def test_print_view_is_the_childs_file(world: World, files: dict[str, int]) -> None:
    """Marked OFFICIAL-SENSITIVE at top and bottom, with who printed it when; the summary,
    every event with its date and who by name, the response, the action and the outcome; no
    navigation and no form. Audited as a print of the alert."""
    before = len(log_rows(world, "hos.ivy", "print"))
    r = world.page("hos.ivy", "GET", f"/alerts/{files['past']}/print")
    assert r.status_code == 200, r.text[:500]
    html = r.text
    body = html.split("<body", 1)[1]
    assert body.count("OFFICIAL-SENSITIVE") == 2
    assert body.index("OFFICIAL-SENSITIVE") < body.index("<h1")
    assert body.rindex("OFFICIAL-SENSITIVE") > body.index("Chronology")
    assert "Printed 1 Mar 2027 09:00 by Ivy Head" in html
    assert "<form" not in html and "<nav" not in html and "header-search" not in html
    for text in ("Past alert for R100", "Chronology", "We will review the plan",
                 "Review the plan", "The plan was reviewed and agreed", "Fay Manager",
                 "Ada Iro", "Resolved", "Action done"):
        assert text in html, text
    assert "tm.fay" not in html and "iro.ada" not in html  # names, not usernames
    # raised, responded, agreed, done, resolved: each dated
    assert len(re.findall(r'<td class="govuk-table__cell[^"]*">1 Mar 2027', html)) >= 5
    assert re.search(r'<link rel="stylesheet" href="/static/print.css\?v=\w+">', html)
    rows = log_rows(world, "hos.ivy", "print")[before:]
    assert [r.alert_id for r in rows] == [files["past"]]


def test_print_css_hides_navigation_and_forms(world: World) -> None:
    css = world.anon.get("/static/print.css").text
    rules = css.split("@media print", 1)[1]
    for selector in (".govuk-service-navigation", ".drp-header__tools", "form",
                     ".govuk-button", ".govuk-footer"):
        assert selector in rules.split("display: none")[0], selector


def test_every_list_links_a_childs_reference_to_the_childs_page(world: World) -> None:
    """The lists name the child by reference, linked to the child's page."""
    html = world.page("irom.cat", "GET", "/alerts").text
    assert '<a class="govuk-link" href="/children/R100">R100</a>' in html
    assert '<a class="govuk-link" href="/children/R200">R200</a>' in html


@pytest.mark.parametrize("words", ["Alert%20{n}", "alert%20{n}", "alert%20no.%20{n}",
                                   "ALERT%20%23{n}", "alert%20number%20{n}", "alert{n}"])
def test_search_by_alert_in_words_finds_it_as_its_number_does(world: World,
                                                              words: str) -> None:
    aid = world.shared["R100"]
    r = search(world, "iro.ada", words.format(n=aid))
    assert (r.status_code, r.headers.get("location")) == (303, f"/alerts/{aid}"), r.text[:500]
    hidden = world.shared["R200"]  # not Ada's: not found, as by its number
    r = search(world, "iro.ada", words.format(n=hidden))
    assert r.status_code == 200 and f"/alerts/{hidden}" not in r.text


def test_nothing_found_is_said_one_way(world: World) -> None:
    """Text that cannot be searched for and a search that finds nothing say it the same."""
    def said(q: str) -> str:
        r = search(world, "dcs.lou", q)
        assert r.status_code == 200 and "<title>Nothing found" in r.text, r.text[:500]
        found = re.search(r'<p class="govuk-body" id="nothing-found">(.*?)</p>', r.text, re.S)
        assert found, r.text
        return re.sub(r"&ldquo;.*?&rdquo;", "Q", found.group(1))

    assert said("R999") == said("R100%3C") == said("alert%209999")
