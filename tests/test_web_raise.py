"""The raise form and the Cafcass referral on GOV.UK Frontend's patterns (issue 16, points 5
and 6), at the routes through FastAPI's TestClient: every problem listed at once, each linking
to a field that exists and marked on it (aria-invalid, the GOV.UK error message), "Error: " in
the title, dates as day, month and year kept after a refusal, the child typed from the
children one may raise for, and a refusal shown at the form's GET address (a reload never
posts). The clock stands at Monday 1 March 2027; R100 is iro.ada's child, R200 iro.ben's."""

from __future__ import annotations

import html
import re
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from drp import db
from drp.models import Alert
from tests.conftest import backends, sign_in

BASE = "https://testserver"
FORM = {"kind": "concern", "child": "R100", "summary": "Contact with her brother has stopped",
        "detail": "", "impact": "", "outcome_wanted": "", "theme": "", "stage": "informal",
        "due-day": "", "due-month": "", "due-year": "", "do": "raise"}


@pytest.fixture
def app(web: Any) -> Any:
    return web


def client(app: Any, who: str = "iro.ada") -> Any:
    return sign_in(app[0], who)


def post(c: Any, url: str, data: dict[str, str]) -> Any:
    return c.post(url, data={"csrf_token": c.csrf, **data}, follow_redirects=False)


def refused_page(c: Any, url: str, data: dict[str, str], page: str) -> Any:
    """Post, expect the redirect to the form's own page (Post/Redirect/Get), and open it."""
    r = post(c, url, data)
    assert r.status_code == 303 and r.headers["location"].split("#")[0] == page, \
        (r.status_code, r.headers.get("location"), r.text[:500])
    return c.get(page)


def summary_links(page: str) -> list[tuple[str, str]]:
    """The error summary's (href, message) pairs."""
    block = page.split('class="govuk-error-summary', 1)[1].split("</ul>", 1)[0]
    return [(href, html.unescape(" ".join(text.split()))) for href, text in
            re.findall(r'<a href="#([^"]+)"[^>]*>(.*?)</a>', block, re.S)]


def input_tag(page: str, field_id: str) -> str:
    found = re.search(rf'<(?:input|textarea|select)\b[^>]*\bid="{field_id}"[^>]*>', page, re.S)
    assert found, f"no field {field_id}"
    return " ".join(found.group().split())


def raised(app: Any, child: str = "R100") -> int:
    _, clock, rt = app
    with db.transaction(rt.engine) as s:
        return int(rt.service(s, clock).raise_alert(
            "iro.ada", child, "The first alert", separate=True).id)


# -- every problem at once -------------------------------------------------------------------
@backends
def test_every_problem_of_the_raise_form_is_listed_at_once_each_linking_to_its_field(
        web_on: Any) -> None:
    c = client(web_on)
    shown = refused_page(c, "/alerts/new", {**FORM, "child": "", "summary": "",
                                            "detail": "x" * 10_001, "due-day": "3",
                                            "due-year": "2027"}, "/alerts/new")
    assert shown.status_code == 422
    page = shown.text
    assert summary_links(page) == [
        ("child", "Enter the child's reference"),
        ("summary", "Enter the summary"),
        ("detail", "The detail must be 10000 characters or fewer"),
        ("due-month", "The informal due date must include a month"),
    ]
    for field, _ in summary_links(page):
        assert 'aria-invalid="true"' in input_tag(page, field), field
        assert f'id="{field}-error"' in page or field.startswith("due"), field
    assert re.search(r"<title>Error: Raise an alert", page)
    # the day and year as typed, the month marked as the part to put right
    assert 'value="3"' in input_tag(page, "due") and 'value="2027"' in input_tag(page, "due-year")
    assert "govuk-input--error" in input_tag(page, "due-month")
    assert "govuk-input--error" not in input_tag(page, "due-year")
    assert 'aria-describedby="due-date-hint due-date-error"' in page
    assert "YYYY-MM-DD" not in page and "is empty" not in page


def test_the_reload_of_a_refused_form_is_its_page_afresh_never_a_post(app: Any) -> None:
    c = client(app)
    first = refused_page(c, "/alerts/new", {**FORM, "summary": ""}, "/alerts/new")
    assert first.status_code == 422 and "There is a problem" in first.text
    again = c.get("/alerts/new")  # what a reload asks for: the GET address
    assert again.status_code == 200 and "There is a problem" not in again.text
    assert "<title>Error:" not in again.text


@pytest.mark.parametrize(("day", "month", "year", "message", "marked"), [
    ("31", "2", "2027", "The informal due date must be a real date", "due"),
    ("3", "13", "2027", "The informal due date must be a real date", "due-month"),
    ("3", "3", "27", "The year of the informal due date must include 4 numbers", "due-year"),
    ("", "", "2027", "The informal due date must include a day and month", "due"),
    ("1", "3", "2027", "The informal due date 1 March 2027 is not after today (1 March 2027);"
     " give a later date", "due"),
])
def test_a_bad_informal_due_date_is_refused_in_govuk_words(
        app: Any, day: str, month: str, year: str, message: str, marked: str) -> None:
    c = client(app)
    page = refused_page(c, "/alerts/new", {**FORM, "due-day": day, "due-month": month,
                                           "due-year": year}, "/alerts/new").text
    assert summary_links(page) == [(marked, message)]
    assert "govuk-input--error" in input_tag(page, marked)
    assert f'value="{year}"' in input_tag(page, "due-year")


def test_an_informal_due_date_as_day_month_and_year_is_the_alerts(app: Any) -> None:
    c = client(app)
    r = post(c, "/alerts/new", {**FORM, "due-day": "5", "due-month": "3", "due-year": "2027"})
    assert r.status_code == 303 and "?done=raised" in r.headers["location"], r.text[:500]
    aid = int(r.headers["location"].split("/")[2].split("?")[0])
    with Session(app[2].engine) as s:
        alert = s.get(Alert, aid)
        assert alert is not None and alert.stage_due == date(2027, 3, 5)


# -- the child, typed --------------------------------------------------------------------------
def test_the_child_is_typed_with_the_children_one_may_raise_for_as_suggestions(
        app: Any) -> None:
    c = client(app)
    page = c.get("/alerts/new").text
    child = input_tag(page, "child")
    assert 'list="children-list"' in child and 'type="text"' in child
    listed = page.split('<datalist id="children-list">', 1)[1].split("</datalist>", 1)[0]
    assert re.findall(r'<option value="([^"]+)"', listed) == ["R100"]  # iro.ada's only
    assert "<select" not in page.split('id="child"', 1)[1].split("</div>", 1)[0]
    r = post(c, "/alerts/new", {**FORM, "child": " R100 "})  # as typed, spaces and all
    assert r.status_code == 303 and "?done=raised" in r.headers["location"], r.text[:500]


def test_a_child_not_ones_own_is_refused_clearly_with_the_other_problems(app: Any) -> None:
    c = client(app)
    page = refused_page(c, "/alerts/new", {**FORM, "child": "R999", "summary": ""},
                        "/alerts/new").text
    assert summary_links(page) == [
        ("child", "There is no child R999 whose alerts you may raise; check the reference"),
        ("summary", "Enter the summary")]
    assert 'value="R999"' in input_tag(page, "child")
    # alone, the service's own answer: not found (R999), or not theirs to raise (R101)
    unknown = refused_page(c, "/alerts/new", {**FORM, "child": "R999"}, "/alerts/new")
    assert unknown.status_code == 404 and "There is no child" in unknown.text
    assert "iro.ada" not in unknown.text.split("</header>", 1)[1]  # "you", not a username


def test_a_child_with_an_open_alert_gets_a_warning_naming_it_and_the_separate_box(
        app: Any) -> None:
    first = raised(app)
    c = client(app)
    page = refused_page(c, "/alerts/new", FORM, "/alerts/new")
    assert page.status_code == 409
    warning = page.text.split('class="govuk-warning-text"', 1)[1].split("</div>", 1)[0]
    assert f'href="/alerts/{first}"' in warning and "already has an open alert" in warning
    assert [href for href, _ in summary_links(page.text)] == ["separate"]
    assert 'aria-invalid="true"' in input_tag(page.text, "separate")
    assert "Contact with her brother has stopped" in input_tag(page.text, "summary")
    r = post(c, "/alerts/new", {**FORM, "separate": "yes"})
    assert r.status_code == 303 and "?done=raised" in r.headers["location"]


def test_the_warning_reads_the_childs_open_concerns_not_the_iros_whole_list(app: Any) -> None:
    """The warning names the child's open concerns, read as the raise command reads them (its
    refusal names the same): not found among every open alert the IRO may see, which the
    access log then recorded as a list she had looked at."""
    from sqlalchemy import text

    first = raised(app)
    rt = app[2]

    def lists() -> int:
        with rt.engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM access_log WHERE actor = 'iro.ada' AND action = 'list'"
            )).scalar_one())

    c = client(app)
    before = lists()
    page = refused_page(c, "/alerts/new", FORM, "/alerts/new")
    assert page.status_code == 409
    warning = page.text.split('class="govuk-warning-text"', 1)[1].split("</div>", 1)[0]
    assert re.findall(r'href="/alerts/(\d+)"', warning) == [str(first)]
    assert lists() == before
    # Someone who sees the child but may not raise for it is refused that, with no warning
    # about a matter they cannot raise (as the command refuses before naming the concerns).
    manager = client(app, "irom.cat")
    page = refused_page(manager, "/alerts/new", FORM, "/alerts/new")
    assert page.status_code == 403 and "already has an open alert" not in page.text


def test_a_theme_suggestion_is_shown_and_chosen_in_the_form(app: Any) -> None:
    c = client(app)
    r = post(c, "/alerts/new", {**FORM, "do": "suggest",
                                "summary": "Contact with her brother has stopped"})
    assert r.status_code == 303 and r.headers["location"] == "/alerts/new#theme"
    page = c.get("/alerts/new").text
    assert "There is a problem" not in page
    said = page.split('class="govuk-inset-text"', 1)[1].split("</div>", 1)[0]
    assert "drp suggests" in said
    title = re.search(r"<strong>([^<]+)</strong>", said)
    assert title
    assert re.search(rf'<option value="[a-z_]+" selected>{re.escape(title.group(1))}</option>',
                     page) or "unsure" in said
    assert "Let drp suggest" in page


# -- the referral ------------------------------------------------------------------------------
@backends
def test_every_problem_of_the_referral_is_listed_at_once(web_on: Any) -> None:
    aid = raised(web_on)
    c = client(web_on)
    url = f"/alerts/{aid}/refer"
    shown = refused_page(c, url, {"legal_advice": "", "advised_on-day": "26",
                                  "advised_on-month": "", "advised_on-year": "2027",
                                  "reason": ""}, url)
    assert shown.status_code == 422
    page = shown.text
    assert summary_links(page) == [
        ("legal_advice", "Enter who gave the legal advice"),
        ("advised_on-month", "The date of the advice must include a month"),
        ("reason", "Enter why the child's case is referred")]
    for field, _ in summary_links(page):
        assert 'aria-invalid="true"' in input_tag(page, field), field
    assert re.search(r"<title>Error: Refer alert", page)
    assert 'value="26"' in input_tag(page, "advised_on")
    assert c.get(url).status_code == 200  # the reload: the form afresh


def test_a_referral_with_the_date_of_the_advice_as_day_month_and_year_is_recorded(
        app: Any) -> None:
    aid = raised(app)
    c = client(app)
    r = post(c, f"/alerts/{aid}/refer", {
        "legal_advice": "Legal services (J. Okoro)", "advised_on-day": "26",
        "advised_on-month": "2", "advised_on-year": "2027",
        "reason": "The plan has drifted for a year"})
    assert r.status_code == 303 and r.headers["location"] == f"/alerts/{aid}?done=refer"
    body = c.get(f"/api/alerts/{aid}").json()
    referred = next(e for e in body["events"] if e["kind"] == "referred")
    assert referred["data"]["advised_on"] == "2027-02-26"


def test_a_refusal_of_the_service_reaches_the_referral_page_in_its_words(app: Any) -> None:
    aid = raised(app)
    c = client(app)
    url = f"/alerts/{aid}/refer"
    page = refused_page(c, url, {"legal_advice": "Legal services", "advised_on-day": "2",
                                 "advised_on-month": "3", "advised_on-year": "2027",
                                 "reason": "Drift"}, url).text
    links = summary_links(page)
    assert [href for href, _ in links] == ["advised_on"]
    assert links[0][1].startswith("The legal advice date 2 March 2027 is after today")
    assert "--" not in links[0][1] and "YYYY" not in page


def test_the_pages_are_served_to_a_client_that_sends_no_cookie_first(app: Any) -> None:
    with TestClient(app[0], base_url=BASE) as anon:
        r = anon.get("/alerts/new", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
