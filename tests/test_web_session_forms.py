"""Every form of an alert's page survives its session ending (issue 16, "forms that survive"):
signed in, the form opened, the session ended on the server, the form posted; after signing in
again the person is back at the form's page with that form open and their text in it, and the
banner's "go to it" link reaches the form. And when the session cookie itself is gone, the
page after sign-in says nothing was saved and why the text could not be kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from drp import db
from drp.alerts import ActionIn
from drp.models import Person, WebSession
from tests.conftest import sign_in
from tests.test_web_forms import day_month_year, form_block, post, sign_in_again


def _do(rt: Any, clock: Any, fn: Callable[[Any], Any]) -> Any:
    with db.transaction(rt.engine) as s:
        return fn(rt.service(s, clock))


def _raise(rt: Any, clock: Any, theme: str | None = "permanence_planning") -> int:
    return int(_do(rt, clock, lambda s: s.raise_alert(
        "iro.ada", "R100", "Care plan late", theme=theme, separate=True).id))


def _with_action(rt: Any, clock: Any) -> int:
    aid = _raise(rt, clock)
    _do(rt, clock, lambda s: s.respond(aid, "tm.fay", "We will review", [
        ActionIn("Review the plan", date(2027, 3, 22), "sw.dan")]))
    return aid


def _at_last_stage(rt: Any, clock: Any) -> int:
    aid = _raise(rt, clock)
    last = rt.protocol.keys[-1]
    _do(rt, clock, lambda s: s.escalate(aid, "iro.ada", "No progress", to=last))
    return aid


def _referred(rt: Any, clock: Any) -> int:
    aid = _at_last_stage(rt, clock)
    _do(rt, clock, lambda s: s.refer(aid, "iro.ada", "Drift in the plan",
                                     legal_advice="Legal services"))
    return aid


def _resolved_with_open_action(rt: Any, clock: Any) -> int:
    aid = _with_action(rt, clock)
    _do(rt, clock, lambda s: s.resolve(aid, "iro.ada", "Agreed a plan"))
    return aid


def _held(rt: Any, clock: Any) -> int:
    aid = _raise(rt, clock)
    _do(rt, clock, lambda s: s.hold(aid, "iro.ada", "Court hearing", date(2027, 3, 10)))
    return aid


@dataclass(frozen=True)
class Case:
    form: str  # the form's name on the page (do-<form>)
    who: str
    setup: Callable[[Any, Any], int]
    posted: str  # the address posted to, after /alerts/<id>/
    data: dict[str, str]
    typed: str  # what must come back in the form ("" when the form has no text)


CASES = [
    Case("respond", "tm.fay", _raise, "respond", {"message": "Typed response"},
         "Typed response"),
    Case("escalate", "iro.ada", _raise, "escalate", {"reason": "Typed escalation"},
         "Typed escalation"),
    Case("resolve", "iro.ada", _raise, "resolve", {"outcome": "Typed outcome"},
         "Typed outcome"),
    Case("withdraw", "iro.ada", _raise, "withdraw", {"reason": "Typed withdrawal"},
         "Typed withdrawal"),
    Case("hold", "iro.ada", _raise, "hold",
         {"reason": "Typed hold", **day_month_year("until", "2027-03-15")}, "Typed hold"),
    Case("extend", "iro.ada", _raise, "extend",
         {"reason": "Typed extension", **day_month_year("until", "2027-03-12")},
         "Typed extension"),
    Case("action-1", "sw.dan", _with_action, "actions/1/done",
         {"comment": "Typed comment"}, "Typed comment"),
    Case("theme", "iro.ada", lambda rt, clock: _raise(rt, clock, theme=None), "theme",
         {"theme": "leaving_care"}, 'value="leaving_care" selected'),
    Case("move", "iro.ada", _raise, "move", {"child": "R101", "reason": "Typed move"},
         "Typed move"),
    Case("link", "iro.ada", _raise, "link", {"other": "4242"}, 'value="4242"'),
    Case("correct", "iro.ada", _raise, "correct",
         {"field": "summary", "text": "Typed correction", "reason": "Typed why"},
         "Typed correction"),
    Case("reopen", "iro.ada", _resolved_with_open_action, "reopen",
         {"reason": "Typed reopening"}, "Typed reopening"),
    Case("cafcass", "iro.ada", _referred, "cafcass",
         {"response": "accepted", "note": "Typed note"}, "Typed note"),
    Case("resume", "iro.ada", _held, "resume", {}, ""),
    Case("acknowledge", "tm.fay", _raise, "acknowledge", {}, ""),
]


def _end_sessions(rt: Any, clock: Any, username: str) -> None:
    """Every session of the person ended on the server (signed out elsewhere)."""
    with db.transaction(rt.engine) as s:
        pid = s.exec(select(Person.id).where(Person.username == username)).one()
        s.execute(update(WebSession).where(col(WebSession.person_id) == pid)
                  .values(revoked_at=clock.now()))


@pytest.mark.parametrize("case", CASES, ids=[c.form for c in CASES])
def test_each_alert_form_comes_back_open_with_its_text_after_the_session_ended(
        web: Any, case: Case) -> None:
    app, clock, rt = web
    aid = case.setup(rt, clock)
    c = sign_in(app, case.who)
    opened = c.get(f"/alerts/{aid}", params={"act": case.form})
    assert f'id="do-{case.form}"' in opened.text, f"{case.form} is not offered"
    _end_sessions(rt, clock, case.who)
    r = post(c, f"/alerts/{aid}/{case.posted}", case.data)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=/alerts/{aid}"
    back = sign_in_again(c, case.who, f"/alerts/{aid}")
    assert back.status_code == 303 and back.headers["location"] == f"/alerts/{aid}"
    page = c.get(f"/alerts/{aid}")
    assert page.status_code == 200 and "Your session had ended" in page.text
    block = form_block(page.text, f"do-{case.form}")
    assert case.typed in block
    assert f'href="#do-{case.form}"' in page.text  # the banner's "go to it" reaches it
    assert 'class="govuk-error-message"' not in block


def test_the_referral_comes_back_on_its_own_page_after_the_session_ended(web: Any) -> None:
    app, clock, rt = web
    aid = _at_last_stage(rt, clock)
    c = sign_in(app, "iro.ada")
    assert c.get(f"/alerts/{aid}/refer").status_code == 200
    _end_sessions(rt, clock, "iro.ada")
    r = post(c, f"/alerts/{aid}/refer", {"legal_advice": "Typed adviser",
                                         "reason": "Typed referral reason"})
    assert r.headers["location"] == f"/login?next=/alerts/{aid}/refer"
    sign_in_again(c, "iro.ada", f"/alerts/{aid}/refer")
    page = c.get(f"/alerts/{aid}/refer")
    assert page.status_code == 200 and "Your session had ended" in page.text
    block = form_block(page.text, "refer-form")
    assert "Typed adviser" in block and "Typed referral reason" in block


def test_a_form_posted_without_a_session_cookie_says_nothing_was_saved_after_sign_in(
        web: Any) -> None:
    """The cookie itself gone (the browser cleared it): drp cannot tell whose the text is, so
    it keeps none, and says so on the form's page once the person is signed in again."""
    app, clock, rt = web
    aid = _raise(rt, clock)
    c = sign_in(app, "iro.ada")
    c.cookies.delete("drp_session")
    r = post(c, f"/alerts/{aid}/withdraw", {"reason": "Typed without a session"})
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=/alerts/{aid}"
    assert "Typed" not in r.headers.get("set-cookie", "")
    assert sign_in_again(c, "iro.ada", f"/alerts/{aid}").status_code == 303
    page = c.get(f"/alerts/{aid}")
    assert page.status_code == 200
    banner = page.text.split('id="signed-out"', 1)[1].split("</div>\n</div>", 1)[0]
    assert "Your session had ended, so nothing was saved" in banner
    assert "cannot tell whose it was" in banner and "Typed without a session" not in page.text
    assert 'id="signed-out"' not in c.get(f"/alerts/{aid}").text  # said once
