"""Forms that survive (issue 16): each bug of the issue reproduced at the routes, through
FastAPI's TestClient, on a fresh app per test (the `web` fixture of conftest.py).

- a page answers a bad path or query value with drp's error page, the API keeps JSON;
- a refused form redirects (303) to its page, which shows the errors and what was typed
  (Post/Redirect/Get), so a reload never asks for the form's POST address;
- a session that ends while a form is open: after signing in again the person is back at the
  form with their text (kept on the server, never in an address, never the password);
- "Let drp suggest" leaves the classifier's suggestion on the alert, and its page says so."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from drp import db
from tests.conftest import TEST_PASSWORD, sign_in

BASE = "https://testserver"


@pytest.fixture
def site(web: Any) -> Any:
    app, clock, rt = web
    with TestClient(app, base_url=BASE) as anon:
        yield Site(app, clock, rt, anon)


class Site:
    def __init__(self, app: Any, clock: Any, rt: Any, anon: TestClient) -> None:
        self.app, self.clock, self.rt, self.anon = app, clock, rt, anon

    def client(self, who: str) -> Any:
        c = sign_in(self.app, who)
        c.portal = self.anon.portal
        return c

    def do(self, fn: Any) -> Any:
        with db.transaction(self.rt.engine) as s:
            return fn(self.rt.service(s, self.clock))

    def raise_alert(self, child: str = "R100", who: str = "iro.ada") -> int:
        return int(self.do(lambda s: s.raise_alert(
            who, child, "Prepared alert", theme="permanence_planning", separate=True).id))


def post(c: Any, url: str, data: dict[str, str]) -> Any:
    return c.post(url, data={"csrf_token": c.csrf, **data}, follow_redirects=False)


def day_month_year(name: str, iso: str) -> dict[str, str]:
    """A date as GOV.UK's date input posts it (drp.web.forms.date_input)."""
    year, month, day = iso.split("-")
    return {f"{name}-day": str(int(day)), f"{name}-month": str(int(month)), f"{name}-year": year}


def shows_date(block: str, name: str, iso: str) -> bool:
    """The date input in `block` holds the date's day, month and year as typed."""
    parts = day_month_year(name, iso)
    return all(re.search(rf'id="{name if part == "day" else f"{name}-{part}"}"[^>]*'
                         rf'value="{parts[f"{name}-{part}"]}"', block)
               for part in ("day", "month", "year"))


def form_block(page: str, form_id: str) -> str:
    assert f'id="{form_id}"' in page, f"no {form_id} form"
    return page.split(f'id="{form_id}"', 1)[1].split("</form>", 1)[0]


# -- 3. bad addresses ----------------------------------------------------------------------------
def test_a_page_with_a_bad_path_or_query_value_answers_with_the_error_page(site: Any) -> None:
    c = site.client("iro.ada")
    r = c.get("/alerts/abc")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), r.text
    assert "Sorry, that did not work" in r.text and "detail" not in r.text
    r = c.get("/alerts/1/actions/x/done")  # only POST there: not JSON either
    assert r.headers["content-type"].startswith("text/html"), r.text
    token = site.rt and c.get("/api/alerts/abc")  # the API keeps its JSON
    assert token.status_code == 422 and token.json()["detail"][0]["loc"] == ["path", "alert_id"]


# -- 2 and 5. Post/Redirect/Get: errors and what was typed at the form's page ---------------------
def test_a_refused_hold_goes_back_to_the_page_with_both_fields_and_a_reload_is_clean(
        site: Any) -> None:
    aid = site.raise_alert()
    c = site.client("iro.ada")
    r = post(c, f"/alerts/{aid}/hold", {"reason": "Awaiting a court hearing",
                                        **day_month_year("until", "2027-06-07")})
    assert r.status_code == 303 and r.headers["location"] == f"/alerts/{aid}#do-hold", r.text
    assert "court" not in r.headers["location"] + r.headers.get("set-cookie", "")
    shown = c.get(f"/alerts/{aid}")
    assert shown.status_code == 422, shown.text[:2000]
    hold = form_block(shown.text, "do-hold")
    assert "Awaiting a court hearing" in hold and shows_date(hold, "until", "2027-06-07")
    assert "more than 65" in hold and "There is a problem" in shown.text
    again = c.get(f"/alerts/{aid}")  # reloading: the page afresh, no error, no 405
    assert again.status_code == 200 and "There is a problem" not in again.text
    assert "Awaiting a court hearing" not in again.text
    opened = c.get(f"/alerts/{aid}/hold", follow_redirects=False)  # the POST address, opened
    assert opened.status_code == 303 and opened.headers["location"] == f"/alerts/{aid}"


def test_a_refused_extension_keeps_both_fields(site: Any) -> None:
    aid = site.raise_alert()
    c = site.client("iro.ada")
    r = post(c, f"/alerts/{aid}/extend", {**day_month_year("until", "2027-03-23"),
                                          "reason": "More time agreed"})
    assert r.status_code == 303, r.text
    shown = c.get(r.headers["location"].split("#")[0])
    extend = form_block(shown.text, "do-extend")
    assert shown.status_code == 422 and "More time agreed" in extend
    assert shows_date(extend, "until", "2027-03-23") and 'class="govuk-error-message"' in extend


def test_the_kept_form_is_only_for_its_person_and_its_page(site: Any) -> None:
    aid, other = site.raise_alert(), site.raise_alert()
    c = site.client("iro.ada")
    post(c, f"/alerts/{aid}/withdraw", {"reason": ""})
    assert "There is a problem" not in c.get(f"/alerts/{other}").text  # another page
    r = post(c, f"/alerts/{aid}/withdraw", {"reason": ""})
    manager = site.client("irom.cat")
    manager.cookies.set("drp_form", c.cookies.get("drp_form"), domain="testserver.local")
    assert "There is a problem" not in manager.get(f"/alerts/{aid}").text  # another person
    assert r.status_code == 303 and c.get(f"/alerts/{aid}").status_code == 422


def test_a_refused_raise_form_and_a_suggestion_go_back_to_the_form(site: Any) -> None:
    c = site.client("iro.ada")
    form = {"kind": "concern", "child": "R100", "summary": "", "detail": "Placement moves",
            "theme": "", "stage": "informal", "separate": "yes", "do": "raise"}
    r = post(c, "/alerts/new", form)
    assert r.status_code == 303 and r.headers["location"] == "/alerts/new", r.text
    shown = c.get("/alerts/new")
    assert shown.status_code == 422 and "Placement moves" in shown.text
    r = post(c, "/alerts/new", {**form, "summary": "Contact with her brother has stopped",
                                "do": "suggest"})
    assert r.status_code == 303 and r.headers["location"] == "/alerts/new#theme"
    shown = c.get("/alerts/new")
    assert shown.status_code == 200 and "drp suggests" in shown.text
    assert "Contact with her brother has stopped" in shown.text


# -- 1. a session that ends while a form is open ---------------------------------------------------
def sign_in_again(c: Any, who: str, next_url: str) -> Any:
    page = c.get("/login", params={"next": next_url})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    return c.post("/login", data={"username": who, "password": TEST_PASSWORD,
                                  "csrf_token": token.group(1), "next": next_url},
                  follow_redirects=False)


def test_after_the_session_ends_mid_form_signing_in_returns_to_the_form_with_the_text(
        site: Any) -> None:
    aid = site.raise_alert()
    c = site.client("iro.ada")
    site.clock.move(minutes=31)  # idle past DRP_SESSION_IDLE_MINUTES
    r = post(c, f"/alerts/{aid}/hold", {"reason": "Awaiting a court hearing",
                                        **day_month_year("until", "2027-04-01")})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/login?next=/alerts/{aid}"
    assert "court" not in r.headers["location"] + r.headers.get("set-cookie", "")
    back = sign_in_again(c, "iro.ada", f"/alerts/{aid}")
    assert back.status_code == 303 and back.headers["location"] == f"/alerts/{aid}"
    page = c.get(f"/alerts/{aid}")
    assert page.status_code == 200 and "Your session had ended" in page.text
    hold = form_block(page.text, "do-hold")
    assert "Awaiting a court hearing" in hold and shows_date(hold, "until", "2027-04-01")
    assert 'class="govuk-error-message"' not in hold


def test_text_kept_after_the_session_ended_is_for_that_person_only(site: Any) -> None:
    """Signed in as someone else on the same browser: nothing comes back; a form without its
    session's CSRF token (another site's post) keeps nothing."""
    aid = site.raise_alert()
    c = site.client("iro.ada")
    site.clock.move(minutes=31)
    post(c, f"/alerts/{aid}/withdraw", {"reason": "Raised on the wrong child"})
    assert sign_in_again(c, "irom.cat", f"/alerts/{aid}").status_code == 303
    assert "Raised on the wrong child" not in c.get(f"/alerts/{aid}").text
    d = site.client("iro.ada")
    site.clock.move(minutes=31)
    r = d.post(f"/alerts/{aid}/withdraw", data={"csrf_token": "forged", "reason": "Forged"},
               follow_redirects=False)
    assert r.status_code == 303 and "drp_form" not in r.headers.get("set-cookie", "")


def test_the_password_and_tokens_are_never_kept() -> None:
    from drp.web.kept import FormKeeper

    keeper = FormKeeper()
    key = keeper.keep(1, "/alerts/new", {"password": "secret", "new_password": "s",
                                         "csrf_token": "t", "idempotency_key": "k",
                                         "summary": "kept"}, {}, 60)
    assert keeper.take(key, 2, "/alerts/new") is None  # not theirs
    kept = keeper.take(key, 1, "/alerts/new")
    assert kept is not None and kept.fields == {"summary": "kept"}
    assert keeper.take(key, 1, "/alerts/new") is None  # once
    assert keeper.keep(1, "/alerts/new", {"summary": "x" * 200_000}, {}, 60) is None


@pytest.mark.parametrize("next_url", ["//evil.example/", "/\\evil.example/",
                                      "https://evil.example/", "http:/evil.example/"])
def test_the_return_address_stays_within_drp(site: Any, next_url: str) -> None:
    c = TestClient(site.app, base_url=BASE)
    r = sign_in_again(c, "iro.ada", next_url)
    assert r.status_code == 303 and r.headers["location"] == "/", r.headers


# -- 6. "Let drp suggest" ----------------------------------------------------------------------------
def test_letting_drp_suggest_leaves_its_suggestion_on_the_alert(site: Any) -> None:
    c = site.client("iro.ada")
    r = post(c, "/alerts/new", {"kind": "concern", "child": "R100", "theme": "",
                                "summary": "The placement plan has not been reviewed",
                                "stage": "informal", "separate": "yes", "do": "raise"})
    assert r.status_code == 303, r.text
    aid = int(r.headers["location"].split("/")[2].split("?")[0])
    body = c.get(f"/api/alerts/{aid}").json()
    raised = next(e for e in body["events"] if e["kind"] == "raised")
    suggested = raised["data"]["suggested"]
    assert suggested and body["theme"] is None
    page = c.get(f"/alerts/{aid}").text
    title = site.rt.taxonomy.title(suggested)
    shown = page.split('id="theme-shown">', 1)[1].split("</dd>", 1)[0]
    assert f"drp suggests: {title}" in shown and "confirm or change" in shown
    opened = c.get(f"/alerts/{aid}?act=theme").text  # its "confirm or change" link
    assert re.search(rf'<option value="{suggested}" selected>', form_block(opened, "do-theme"))
