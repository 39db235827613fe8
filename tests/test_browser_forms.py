"""Forms that survive, and keyboard focus, in a real headless Chromium (test_browser's served app
and browser), each page checked by axe-core (test_browser_children's axe.min.js):

- a session that ends while a form is open: after signing in again the person is back at the
  form with what they typed;
- an error, then a reload: the form's page again (Post/Redirect/Get), never a 405 or JSON;
- every kind of control shows the GOV.UK focus style when tabbed to (yellow, black text, a
  thick black bar or ring), read from its computed style."""

from __future__ import annotations

import re
from typing import Any

from drp import db
from tests import test_browser
from tests.conftest import TEST_PASSWORD

from .test_browser import Site
from .test_browser_children import axe_source, serious_violations

browser = test_browser.browser
site = test_browser.site

YELLOW, BLACK = "rgb(255, 221, 0)", "rgb(11, 12, 12)"


def raise_one(site: Site, child: str = "R100") -> int:
    with db.transaction(site.rt.engine) as s:
        return int(site.rt.service(s, site.clock).raise_alert(
            "iro.ada", child, "Contact with her brother has stopped", stage="informal",
            theme="permanence_planning", separate=True).id)


def fill_date(page: Any, name: str, day: str, month: str, year: str) -> None:
    """Type a date into GOV.UK's date input (the day's id is the date's name)."""
    page.fill(f"#{name}", day)
    page.fill(f"#{name}-month", month)
    page.fill(f"#{name}-year", year)


def typed_date(page: Any, name: str) -> tuple[str, str, str]:
    return (page.input_value(f"#{name}"), page.input_value(f"#{name}-month"),
            page.input_value(f"#{name}-year"))


def test_a_session_ending_mid_form_returns_to_the_form_with_the_text(site: Site) -> None:
    source = axe_source()
    aid = raise_one(site)
    ada = site.sign_in("iro.ada", axe=True)
    ada.goto(f"/alerts/{aid}?act=hold")
    ada.fill("#reason-hold", "Awaiting the court hearing on 12 April")
    fill_date(ada, "until", "1", "4", "2027")
    site.clock.move(minutes=31)  # she was called away: the session is idle past 30 minutes
    ada.locator("#do-hold").get_by_role("button", name="Put on hold").click()
    ada.wait_for_url(re.compile(r"/login\?next=/alerts/\d+$"))
    assert "Awaiting the court" not in ada.url
    ada.fill("#username", "iro.ada")
    ada.fill("#password", TEST_PASSWORD)
    ada.get_by_role("button", name="Sign in", exact=True).click()
    ada.wait_for_url(re.compile(rf"/alerts/{aid}$"))
    assert "Method Not Allowed" not in ada.content()
    assert "Your session had ended" in ada.locator("#signed-out").inner_text()
    assert ada.input_value("#reason-hold") == "Awaiting the court hearing on 12 April"
    assert typed_date(ada, "until") == ("1", "4", "2027")
    site.shot(ada, "back-at-the-form")
    assert serious_violations(ada, source) == []
    ada.locator("#do-hold").get_by_role("button", name="Put on hold").click()
    ada.wait_for_url(re.compile(rf"/alerts/{aid}\?done=hold$"))


def test_an_error_then_a_reload_shows_the_form_again(site: Site) -> None:
    source = axe_source()
    aid = raise_one(site)
    ada = site.sign_in("iro.ada", axe=True)
    ada.goto(f"/alerts/{aid}?act=extend")
    fill_date(ada, "until", "15", "3", "2027")  # the reason left empty: refused by drp
    ada.locator("#do-extend").get_by_role("button", name="Change the due date").click()
    ada.wait_for_url(re.compile(rf"/alerts/{aid}(#do-extend)?$"))
    assert "There is a problem" in ada.locator(".govuk-error-summary").inner_text()
    assert typed_date(ada, "until") == ("15", "3", "2027")
    assert serious_violations(ada, source) == []
    answer = ada.reload()
    assert answer is not None and answer.status == 200, answer and answer.status
    assert "Method Not Allowed" not in ada.content() and ada.locator("h1").is_visible()
    ada.goto(f"/alerts/{aid}/extend")  # the form's address itself
    assert ada.url.endswith(f"/alerts/{aid}") and ada.locator("h1").is_visible()
    ada.goto("/alerts/abc")
    assert "Sorry, that did not work" in ada.locator("h1").inner_text()
    assert serious_violations(ada, source) == []


def luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


FOCUSED = """() => {
  const e = document.activeElement, s = getComputedStyle(e);
  const field = ['INPUT', 'SELECT', 'TEXTAREA'].includes(e.tagName);
  const kind = e.closest('header') && !field ? 'header ' + e.tagName.toLowerCase()
    : e.classList.contains('govuk-button') ? 'button'
      + (e.classList.contains('govuk-button--secondary') ? ' secondary'
         : e.classList.contains('govuk-button--warning') ? ' warning' : '')
    : e.tagName === 'INPUT' ? 'input ' + e.type : e.tagName.toLowerCase();
  // GOV.UK's radios and checkboxes hide the input and ring its label's box (::before)
  const box = ['radio', 'checkbox'].includes(e.type) && e.labels.length
    ? getComputedStyle(e.labels[0], '::before') : null;
  return {kind, id: e.id || e.textContent.trim().slice(0, 30), color: s.color,
          background: s.backgroundColor, shadow: box ? box.boxShadow : s.boxShadow,
          outline: s.outlineColor,
          outlineWidth: s.outlineWidth, outlineStyle: s.outlineStyle};
}"""
KINDS = {"header a", "header button", "a", "button", "button secondary", "button warning",
         "input text", "input radio", "textarea", "select"}


def test_keyboard_focus_is_visible_on_every_kind_of_control(site: Site) -> None:
    """Tabbing through the raise form and an alert's page: each control, when focused, is
    yellow with black text and a black bar (links, buttons), or has a yellow outline and a
    black ring (fields), or a yellow ring round its box (radios); black on yellow and the
    black bar on white are well over 3:1."""
    aid = raise_one(site)
    ada = site.sign_in("iro.ada", bypass_csp=True)
    seen: dict[str, dict[str, Any]] = {}
    for url in ("/alerts/new", f"/alerts/{aid}", f"/alerts/{aid}?act=withdraw"):
        ada.goto(url)
        ada.mouse.move(0, 0)
        for _ in range(120):
            ada.keyboard.press("Tab")
            found = ada.evaluate(FOCUSED)
            seen.setdefault(found["kind"], found)
    missing = KINDS - set(seen)
    assert not missing, f"never tabbed to {missing}: {sorted(seen)}"
    problems = []
    for kind in sorted(set(seen) - {"body"}):
        s = seen[kind]
        if kind in ("input radio", "input checkbox"):
            ok = YELLOW in s["shadow"]  # a yellow ring round the box, its border black
        elif kind.startswith(("input", "textarea", "select")):
            ring = BLACK in s["shadow"] or (s["outline"] == BLACK and s["outlineStyle"] != "none")
            ok = ring and (YELLOW in s["shadow"] or s["outline"] == YELLOW)
        else:
            # the skip link, GOV.UK's own, is yellow with black text and a yellow outline
            marked = BLACK in s["shadow"] or (s["id"] == "Skip to main content"
                                              and s["outline"] == YELLOW)
            ok = (s["background"] == YELLOW and s["color"] == BLACK and marked
                  and contrast(s["color"], s["background"]) >= 4.5)
        if not ok:
            problems.append(f"{kind} ({s['id']}): {s}")
    assert problems == [], "\n".join(problems)
    assert contrast(BLACK, "rgb(255, 255, 255)") >= 3 and contrast(YELLOW, BLACK) >= 3


def test_the_raise_form_lists_every_problem_at_once_and_a_reload_does_not_post(
        site: Site) -> None:
    """Several problems at once in the error summary, focused, each link landing on its
    field; the typed date kept; the child typed from the suggestions; the reload a GET."""
    source = axe_source()
    first = raise_one(site)
    ada = site.sign_in("iro.ada", axe=True)
    posts: list[str] = []
    ada.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    for width in (1100, 375):
        ada.set_viewport_size({"width": width, "height": 900})
        ada.goto("/alerts/new")
        assert ada.locator("#child").get_attribute("list") == "children-list"
        assert ada.locator("#children-list option").evaluate_all(
            "os => os.map(o => o.value)") == ["R100"]
        ada.fill("#child", "R999")
        fill_date(ada, "due", "31", "2", "2027")
        ada.get_by_role("button", name="Raise the alert").click()
        ada.wait_for_url(re.compile(r"/alerts/new$"))
        assert ada.title().startswith("Error: ")
        summary = ada.locator(".govuk-error-summary")
        assert ada.evaluate("document.activeElement.classList.contains"
                            "('govuk-error-summary')"), "focus is not on the summary"
        links = summary.locator("a")
        assert links.all_inner_texts() == [
            "There is no child R999 whose alerts you may raise; check the reference",
            "Enter the summary", "The informal due date must be a real date"]
        for href in links.evaluate_all("as => as.map(a => a.getAttribute('href'))"):
            assert ada.locator(href).count() == 1, href
            assert ada.locator(href).get_attribute("aria-invalid") == "true", href
        assert typed_date(ada, "due") == ("31", "2", "2027")
        site.shot(ada, f"raise-errors-{width}")
        assert serious_violations(ada, source) == []
        links.nth(1).click()  # the summary's link lands in its field
        assert ada.evaluate("document.activeElement.id") == "summary"
        before = len(posts)
        answer = ada.reload()
        assert answer is not None and answer.status == 200 and len(posts) == before
        assert ada.locator(".govuk-error-summary").count() == 0
    ada.set_viewport_size({"width": 1100, "height": 900})
    ada.fill("#child", "R100")
    ada.fill("#summary", "Contact with her brother has stopped again")
    ada.get_by_role("button", name="Raise the alert").click()
    ada.wait_for_url(re.compile(r"/alerts/new$"))  # R100 has an open alert: the warning
    warning = ada.locator(".govuk-warning-text")
    assert f"alert {first}" in warning.inner_text()
    assert warning.locator(f'a[href="/alerts/{first}"]').count() == 1
    site.shot(ada, "raise-open-alert")
    ada.check("#separate")
    ada.get_by_role("button", name="Raise the alert").click()
    ada.wait_for_url(re.compile(r"/alerts/\d+\?done=raised$"))
