"""An alert's page built for its reader (issue 16, point 3): where it stands in words (who must
act, by name and team, by when in working days; the next stage named; closed alerts with when
and how long), only the actions this person may take now, each a button opening its one form
(no form by default), withdraw behind a confirmation, names never usernames; and the print
view for the child's file."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from drp import db
from drp.alerts import ActionIn
from tests.conftest import sign_in

DUE = date(2027, 3, 12)  # a working day after the clock's 1 March 2027
USERNAMES = ("iro.ada", "iro.ben", "irom.cat", "sw.dan", "tm.fay", "hos.ivy", "sm.hal")
KEYS = ("east-a", "west-a")


def do(rt: Any, clock: Any, fn: Any) -> Any:
    with db.transaction(rt.engine) as s:
        return fn(rt.service(s, clock))


def raise_(rt: Any, clock: Any, summary: str = "Care plan late") -> int:
    return int(do(rt, clock, lambda s: s.raise_alert(
        "iro.ada", "R100", summary, theme="permanence_planning", separate=True).id))


def offered(page: str) -> set[str]:
    """The actions the page offers as buttons (`?act=` links)."""
    return set(re.findall(r'href="\?act=([\w-]+)#act"', page))


def forms_on(page: str) -> list[str]:
    """The forms of the page's content (not the header's search and sign out)."""
    main = page.split('id="main-content"', 1)[1].split("</main>", 1)[0]
    return re.findall(r'<form[^>]*action="([^"]+)"', main)


def without_links(page: str) -> str:
    """The page's words, without the header and without attributes people do not read
    (addresses; a select's option values, which post the owner's username)."""
    main = page.split('id="main-content"', 1)[1].split("</main>", 1)[0]
    return re.sub(r'(href|action|value)="[^"]*"', "", main)


def test_no_form_is_open_by_default_and_a_button_opens_its_one_form(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock)
    tm = sign_in(app, "tm.fay")
    page = tm.get(f"/alerts/{aid}").text
    assert forms_on(page) == [], forms_on(page)
    assert "respond" in offered(page)
    opened = tm.get(f"/alerts/{aid}", params={"act": "respond"}).text
    assert forms_on(opened) == [f"/alerts/{aid}/respond"]
    assert 'id="act"' in opened and 'name="action1_due-day"' in opened  # day/month/year
    # A form this person may not use is not opened by asking for it.
    assert forms_on(tm.get(f"/alerts/{aid}", params={"act": "escalate"}).text) == []


def test_only_the_actions_this_person_may_take_now_are_offered(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock)
    manager = offered(sign_in(app, "tm.fay").get(f"/alerts/{aid}").text)
    assert "respond" in manager and not manager & {"escalate", "resolve", "withdraw", "hold"}
    # At stage 1 the team manager responds (the social worker may not: informal only).
    do(rt, clock, lambda s: s.escalate(aid, "iro.ada", "No response"))
    do(rt, clock, lambda s: s.respond(aid, "tm.fay", "We will review the plan",
                                      [ActionIn("Visit the child", DUE, owner="sw.dan")]))
    iro = offered(sign_in(app, "iro.ada").get(f"/alerts/{aid}").text)
    assert {"escalate", "resolve"} <= iro and "respond" not in iro
    worker = sign_in(app, "sw.dan").get(f"/alerts/{aid}").text
    assert offered(worker) == {"action-1"}, offered(worker)
    form = sign_in(app, "sw.dan").get(f"/alerts/{aid}", params={"act": "action-1"}).text
    assert forms_on(form) == [f"/alerts/{aid}/actions/1/done"]


def test_a_manager_who_has_responded_is_offered_to_add_to_it_not_to_respond(web: Any) -> None:
    """Awaiting the IRO's decision, a further response is what the service allows
    (svc.allowed), so it is offered as adding to the response, not as the page's main
    action; before any response, "Respond" is."""
    app, clock, rt = web
    aid = raise_(rt, clock)

    def respond_button(page: str) -> str:
        found = re.search(r'<a [^>]*id="offer-respond"[^>]*>.*?</a>', page, re.S)
        assert found, page
        return found.group(0)

    first = respond_button(sign_in(app, "tm.fay").get(f"/alerts/{aid}").text)
    assert "Respond" in first and "govuk-button--secondary" not in first
    do(rt, clock, lambda s: s.respond(aid, "tm.fay", "We will review the plan"))
    assert "respond" in do(rt, clock, lambda s: s.allowed(aid, "tm.fay"))
    tm = sign_in(app, "tm.fay")
    again = respond_button(tm.get(f"/alerts/{aid}").text)
    assert "Add to your response" in again and "govuk-button--secondary" in again
    opened = tm.get(f"/alerts/{aid}", params={"act": "respond"}).text
    assert "Add to your response</h2>" in opened


def resolution_due(rt: Any, aid: int) -> date:
    from drp.models import Alert

    with db.transaction(rt.engine) as s:
        alert = s.get(Alert, aid)
        assert alert is not None and alert.resolution_due is not None
        return alert.resolution_due


def test_a_held_alert_says_its_resolution_date_moves_when_the_hold_ends(web: Any) -> None:
    """While on hold the formal clock stops: the page does not show the old resolution date
    as if it stood, but says it moves when the hold ends, and the date it will have if the
    alert resumes on the hold's end date (which resuming then gives)."""
    app, clock, rt = web
    aid = int(do(rt, clock, lambda s: s.raise_alert(
        "iro.ada", "R100", "Care plan late", theme="permanence_planning", separate=True,
        stage="stage1").id))
    before = resolution_due(rt, aid)
    until = date(2027, 3, 15)
    do(rt, clock, lambda s: s.hold(aid, "iro.ada", "Court hearing", until))
    iro = sign_in(app, "iro.ada")
    page = iro.get(f"/alerts/{aid}").text
    row = page.split('id="resolution-due">', 1)[1].split("</span>", 1)[0]
    assert "moves on when the hold ends" in row, row
    assert f"By {before.day} {before:%B %Y}" not in row  # the old date is not shown
    clock.move(days=14)  # to 15 March 2027, the hold's end
    do(rt, clock, lambda s: s.resume(aid, "iro.ada"))
    after = resolution_due(rt, aid)
    assert f"If the alert resumes on 15 March 2027, it will be due by " \
           f"{after.day} {after:%B %Y}" in row, (row, after)


def test_withdraw_asks_for_confirmation_first(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock)
    iro = sign_in(app, "iro.ada")
    page = iro.get(f"/alerts/{aid}").text
    assert "withdraw" in offered(page) and f"/alerts/{aid}/withdraw" not in forms_on(page)
    confirm = iro.get(f"/alerts/{aid}", params={"act": "withdraw"}).text
    assert f"Are you sure you want to withdraw alert {aid}?" in confirm
    block = confirm.split('id="do-withdraw"', 1)[1].split("</form>", 1)[0]
    assert "govuk-button--warning" in block and f'href="/alerts/{aid}"' in block  # cancel
    # What the warning says of reopening is the machine's (drp.ladder.machine): a withdrawn
    # alert has no way back, so the withdrawal is final.
    assert "withdrawal is final" in block and "reopen it" not in block
    r = iro.post(f"/alerts/{aid}/withdraw", data={"csrf_token": iro.csrf, "reason": ""},
                 follow_redirects=False)
    assert r.status_code == 303
    again = iro.get(f"/alerts/{aid}")  # refused: the confirmation again, with the error
    assert again.status_code == 422 and "There is a problem" in again.text
    assert 'href="#reason-withdraw"' in again.text
    assert "Are you sure you want to withdraw" in again.text


def test_the_summary_says_who_must_act_by_when_and_names_the_next_stage(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock)
    page = sign_in(app, "iro.ada").get(f"/alerts/{aid}").text
    standing = page.split('id="standing"', 1)[1].split("</dl>", 1)[0]
    assert re.search(r"Fay Manager, East A, must respond by \d+ March 2027 \(in \d+ working"
                     r" days?\)", standing), standing
    nxt = rt.protocol.next_stage(rt.protocol.keys[0]).title
    assert f"If not resolved, the IRO can escalate to {nxt}." in standing
    clock.move(days=30)  # long past the informal due date
    late = sign_in(app, "iro.ada").get(f"/alerts/{aid}").text
    assert re.search(r"overdue by \d+ working days", late)
    do(rt, clock, lambda s: s.respond(aid, "tm.fay", "We will review the plan"))
    answered = sign_in(app, "iro.ada").get(f"/alerts/{aid}").text
    assert "Awaiting the IRO's decision: Ada Iro" in answered


def test_names_not_usernames_or_team_keys_anywhere_on_the_page(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock)
    do(rt, clock, lambda s: s.acknowledge(aid, "tm.fay"))
    do(rt, clock, lambda s: s.respond(aid, "tm.fay", "We will review the plan",
                                      [ActionIn("Visit the child", DUE, owner="sw.dan")]))
    for who in ("iro.ada", "tm.fay", "sw.dan"):
        for path in (f"/alerts/{aid}", f"/alerts/{aid}?act=respond",
                     f"/alerts/{aid}/print"):
            page = sign_in(app, who).get(path).text
            shown = without_links(page) if "print" not in path else page
            for name in USERNAMES + KEYS:
                assert not re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", shown), (
                    who, path, name)
    page = sign_in(app, "iro.ada").get(f"/alerts/{aid}").text
    assert "Fay Manager" in page and "Dan Worker" in page and "East A" in page


def test_a_closed_alert_shows_when_and_how_it_closed_and_its_working_days(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock)
    clock.move(days=7)  # 8 March 2027: five working days later
    do(rt, clock, lambda s: s.resolve(aid, "iro.ada", "Plan agreed"))
    page = sign_in(app, "iro.ada").get(f"/alerts/{aid}").text
    assert "Resolution due" not in page and "must respond" not in page
    closed = page.split('id="closed">', 1)[1].split("</span>", 1)[0]
    assert closed.startswith("Resolved on 8 Mar 2027") and "by Ada Iro" in closed
    taken = page.split('id="time-taken">', 1)[1].split("</span>", 1)[0]
    assert taken == "5 working days from raising to closing"


def test_every_date_on_the_page_is_in_words(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock)
    do(rt, clock, lambda s: s.hold(aid, "iro.ada", "Awaiting a court hearing", DUE))
    page = sign_in(app, "iro.ada").get(f"/alerts/{aid}").text
    assert "On hold until 12 March 2027" in page
    assert not re.search(r">[^<]*\b\d{4}-\d{2}-\d{2}\b", without_links(page))


def test_the_print_view_is_for_the_childs_file(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock)
    do(rt, clock, lambda s: s.respond(aid, "tm.fay", "We will review the plan",
                                      [ActionIn("Visit the child", DUE, owner="sw.dan")]))
    page = sign_in(app, "iro.ada").get(f"/alerts/{aid}/print").text
    assert page.count("OFFICIAL-SENSITIVE") >= 2 and "by Ada Iro" in page
    for heading in ("Summary", "Chronology", "Responses", "Agreed actions", "Outcome"):
        assert f">{heading}</h2>" in page
    assert "We will review the plan" in page and "Dan Worker" in page
    assert "<form" not in page and "govuk-service-navigation" not in page


def test_print_css_hides_what_only_a_screen_can_use() -> None:
    from pathlib import Path

    import drp.web

    css = (Path(drp.web.__file__).parent / "static" / "print.css").read_text()
    printed = css.split("@media print", 1)[1]
    for hidden in (".drp-header", ".govuk-footer", ".drp-search", "form", ".govuk-button",
                   ".drp-open-form", ".govuk-notification-banner"):
        assert hidden in printed.split("display: none", 1)[0], hidden


def test_the_correction_form_lists_every_problem_at_once(web: Any) -> None:
    app, clock, rt = web
    aid = raise_(rt, clock)
    ada = sign_in(app, "iro.ada")
    empty = ada.post(f"/alerts/{aid}/correct", data={
        "csrf_token": ada.csrf, "text": "", "reason": ""}, follow_redirects=True)
    assert empty.status_code == 422
    summary = empty.text.split("govuk-error-summary__list", 1)[1].split("</ul>", 1)[0]
    assert re.findall(r'href="#([\w-]+)"', summary) == [
        "correct-field", "correct-text", "reason-correct"]
    assert "Select which text is wrong" in summary and "Enter the reason" in summary
    both = ada.post(f"/alerts/{aid}/correct", data={
        "csrf_token": ada.csrf, "field": "summary", "text": " ", "reason": ""},
        follow_redirects=True)
    listed = both.text.split("govuk-error-summary__list", 1)[1].split("</ul>", 1)[0]
    assert re.findall(r'href="#([\w-]+)"', listed) == ["correct-text", "reason-correct"]
    assert "Enter the corrected summary" in listed


def test_the_case_notes_for_the_childs_file_as_pdf_and_text(web: Any) -> None:
    from sqlmodel import Session, col, select

    from drp.casenotes import note_text, notes_of_alert
    from drp.models import AccessLog

    app, clock, rt = web
    aid = raise_(rt, clock)
    do(rt, clock, lambda s: s.respond(aid, "tm.fay", "Plan by Friday"))
    fay = sign_in(app, "tm.fay")  # may see the alert, acts on none of it now
    page = fay.get(f"/alerts/{aid}").text
    link = re.search(r'<a class="govuk-link[^"]*" id="casenotes-pdf" href="([^"]+)">'
                     r"Case notes for the child's file \(PDF\)</a>", page)
    assert link and link.group(1) == f"/alerts/{aid}/casenotes.pdf"
    pdf = fay.get(link.group(1))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-disposition"] == (
        f'attachment; filename="alert-{aid}-casenotes.pdf"')
    text = fay.get(f"/alerts/{aid}/casenotes.txt")
    assert text.headers["content-type"].startswith("text/plain")
    with Session(rt.engine) as s:
        assert text.text == note_text(notes_of_alert(s, rt.protocol, rt.settings.tz, aid),
                                      rt.settings.tz)
        prints = s.exec(select(AccessLog.actor, AccessLog.channel).where(
            AccessLog.action == "print", AccessLog.alert_id == aid).order_by(
            col(AccessLog.id))).all()
    assert [tuple(p) for p in prints] == [("tm.fay", "web"), ("tm.fay", "web")]
    assert "Case notes for the child's file (PDF)" in sign_in(app, "iro.ada").get(
        f"/alerts/{aid}").text
    # Whoever may not see the alert: the same 404 as its page.
    ben = sign_in(app, "iro.ben")
    assert ben.get(f"/alerts/{aid}/casenotes.pdf").status_code == 404
    assert fay.get(f"/alerts/{aid}/casenotes.doc").status_code == 404
