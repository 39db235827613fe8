"""Every page each person reaches, in every state a form gives it, in a real headless Chromium:
axe-core finds no violation of any impact (WCAG 2.2 A and AA and best practice); at 375 px
nothing makes the page scroll sideways; and a keyboard-only pass shows a visible GOV.UK focus
state (yellow, with black text where the background turns yellow) on every control.

The pages are found the way a person finds them: from the navigation of each role's start
page, the alerts those lists link to, and on each alert page the buttons that open its forms
(each then posted empty, for its error state)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import test_browser, test_browser_children
from tests.test_browser_children import axe_source, prepare_child

from .test_browser import Site

browser = test_browser.browser
site = test_browser.site

ROLES = ("iro.ada", "tm.fay", "sw.dan", "hos.ivy", "irom.cat", "dcs.lou", "admin.max")
YELLOW = "rgb(255, 221, 0)"
BLACK = "rgb(11, 12, 12)"
# A page's own links worth visiting besides the navigation: an alert, a child, a form opened
# by its button (?act=...), the print view, a list's filtered page.
FOLLOW = re.compile(r"^/(alerts/new|alerts/\d+(\?act=[a-z_-]+)?|alerts/\d+/(print|refer)|children/[A-Z0-9-]+"
                    r"|search\?q=.*|admin(/[a-z-]+)?|cover)$")

DOWNLOAD = re.compile(r"\.(csv|pdf|svg|png|json|docx)(\?|$)")


def violations(page: Any, source: str) -> list[str]:
    """axe-core's violations of any impact, one line each."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=source)
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [f"{v['id']} ({v['impact']}): {', '.join(v['nodes'])}" for v in found]


def links(page: Any) -> list[str]:
    """The page's own links (same site, no fragment), in page order, once each."""
    hrefs = page.evaluate("""() => [...document.querySelectorAll('header a[href], main a[href]')]
        .map(a => new URL(a.href)).filter(u => u.origin === location.origin)
        .map(u => u.pathname + u.search)""")
    out: list[str] = []
    for href in hrefs:
        path = href.split("#", 1)[0]
        if path.startswith("/") and path not in out:
            out.append(path)
    return out


# A page's shape: its path with each alert's number and each child's reference made general,
# and its query's keys. An alert's or a child's own page is visited for every one reached
# (what it shows is that alert's state); other shapes (a form opened on an alert, the print
# view, a filtered list) at most twice each, since they are one template over other data. axe
# runs at 375 px once for each shape (its narrow layout is the template's), at 1280 px on
# every page visited; the sideways-scroll check runs at 375 px on every page visited.
EVERY_ONE = re.compile(r"^/(alerts|children)/[^/?]+$")
PER_SHAPE = 2
SHAPE = re.compile(r"/(\d+|[A-Z][A-Z0-9-]*\d[A-Z0-9-]*)(?=/|\?|$)")


def shape(url: str) -> str:
    path, _, query = url.partition("?")
    keys = sorted(part.split("=", 1)[0] for part in query.split("&") if part)
    acts = [part for part in query.split("&") if part.startswith("act=")]
    return SHAPE.sub("/N", path) + "?" + "&".join(keys + acts)


def check_page(page: Any, source: str, where: str, problems: list[str],
               narrow_axe: bool = True) -> None:
    for v in violations(page, source):
        problems.append(f"{where} at 1280 px: {v}")
    page.set_viewport_size({"width": 375, "height": 800})
    try:
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        if wide > 375:
            problems.append(f"{where} at 375 px: the page is {wide} px wide")
        if narrow_axe:
            for v in violations(page, source):
                problems.append(f"{where} at 375 px: {v}")
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def post_empty(page: Any) -> bool:
    """Submit the main form's primary button with its fields as they are (an error state);
    False where the page has no such form."""
    button = page.locator("main form button.govuk-button:not(.govuk-button--secondary)"
                          ":not(.govuk-button--warning)")
    if button.count() == 0:
        return False
    for field in page.locator("main form textarea, main form input[type=text]").all():
        if field.is_visible() and field.is_editable():
            field.fill("")
    button.first.click()
    page.wait_for_load_state()
    return True


def crawl(site: Site, username: str, source: str, problems: list[str]) -> list[str]:
    page = site.sign_in(username, axe=True, viewport={"width": 1280, "height": 900})
    seen: list[str] = []
    shapes: dict[str, int] = {}
    queue = [urlsplit(page.url).path, *links(page)]
    while queue and len(seen) < 40:
        url = queue.pop(0)
        if url in seen or url in ("/logout",) or DOWNLOAD.search(url) or not (
                url.startswith("/") and (FOLLOW.match(url) or url.count("/") == 1)):
            continue
        if shapes.get(shape(url), 0) >= PER_SHAPE and not EVERY_ONE.match(url):
            continue
        seen.append(url)
        answer = page.goto(url)
        assert answer is not None and answer.status < 500, (username, url)
        if answer.status >= 400:
            continue
        narrow = shape(url) not in shapes
        shapes[shape(url)] = shapes.get(shape(url), 0) + 1
        check_page(page, source, f"{username} {url}", problems, narrow)
        queue.extend(u for u in links(page) if u not in seen)
        if "act=" in url and "withdraw" not in url and post_empty(page):
            check_page(page, source, f"{username} {url} (an error)", problems, narrow)
    return seen


# What each person's crawl must reach (so a broken link cannot hide a page from the check).
MUST_REACH = {
    "iro.ada": ("/alerts/new", "act="), "tm.fay": ("act=", "/children/"),
    "sw.dan": ("/my-actions",), "hos.ivy": ("/figures", "/outstanding"),
    "irom.cat": ("/figures", "/alerts", "/children/"), "dcs.lou": ("/figures",),
    "admin.max": ("/admin/people", "/admin/sign-ins", "/cover")}


# Two tests (each a unit the two test workers share out, tests/conftest.py SPLIT): those who
# act on alerts, and those who oversee or administer.
@pytest.mark.parametrize("username", ROLES[:3])
def test_every_page_those_who_act_reach_passes_axe_and_fits_375_px(
        site: Site, username: str) -> None:
    check_everything_reached(site, username)


@pytest.mark.parametrize("username", ROLES[3:])
def test_every_page_those_who_oversee_reach_passes_axe_and_fits_375_px(
        site: Site, username: str) -> None:
    check_everything_reached(site, username)


def check_everything_reached(site: Site, username: str) -> None:
    source = axe_source()
    prepare_child(site)
    problems: list[str] = []
    reached = crawl(site, username, source, problems)
    assert problems == [], "\n".join(problems)
    for part in MUST_REACH[username]:
        assert any(part in u for u in reached), (part, reached)


FOCUS_STATE = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    // A radio or a checkbox shows its focus on its label's ring (GOV.UK's ::before/::after).
    const ring = (el.type === 'radio' || el.type === 'checkbox') && el.labels && el.labels[0]
        ? [getComputedStyle(el.labels[0], '::before').boxShadow,
           getComputedStyle(el.labels[0], '::after').boxShadow].join(' ') : '';
    const s = getComputedStyle(el);
    return {ring: ring, tag: el.tagName, id: el.id, text: (el.innerText || el.value || '').slice(0, 40),
            outline: s.outlineStyle !== 'none' ? s.outlineColor + ' ' + s.outlineWidth : '',
            shadow: s.boxShadow, background: s.backgroundColor, color: s.color};
}"""


def visible_focus(state: dict[str, Any]) -> bool:
    """GOV.UK's focus state: yellow in the outline, the shadow or the background; where the
    background is yellow, the text black."""
    yellow = YELLOW in state["outline"] or YELLOW in state["shadow"] or \
        state["background"] == YELLOW or YELLOW in state["ring"]
    if state["background"] == YELLOW and state["text"].strip():
        return yellow and state["color"] == BLACK
    return yellow


@pytest.mark.parametrize("username, path", [
    ("iro.ada", "/alerts/new"), ("tm.fay", "/inbox"), ("tm.fay", "open-alert"),
    ("hos.ivy", "/"), ("admin.max", "/admin")])
def test_a_keyboard_only_pass_shows_where_focus_is_on_every_control(
        site: Site, username: str, path: str) -> None:
    ids = prepare_child(site)
    page = site.sign_in(username, viewport={"width": 1280, "height": 900})
    page.goto(f"/alerts/{ids['open']}" if path == "open-alert" else path)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    seen: list[dict[str, Any]] = []
    for _ in range(80):
        page.keyboard.press("Tab")
        state = page.evaluate(FOCUS_STATE)
        if state is None or (seen and state == seen[0]):
            break
        seen.append(state)
    assert len(seen) >= 5, seen  # the pass went through the page's controls
    unseen = [s for s in seen if not visible_focus(s)]
    assert unseen == [], unseen


def test_a_team_managers_response_by_keyboard_alone(site: Site) -> None:
    """Open the alert from the inbox, open the response form with its button, type, send:
    Tab, Enter and typing only."""
    ids = prepare_child(site)
    fay = site.sign_in("tm.fay", viewport={"width": 1280, "height": 900})
    fay.goto("/inbox")

    def tab_to(predicate: str, limit: int = 80) -> None:
        for _ in range(limit):
            fay.keyboard.press("Tab")
            if fay.evaluate(f"() => {{ const el = document.activeElement; return {predicate}; }}"):
                return
        raise AssertionError(f"no control matching {predicate} by Tab")

    tab_to(f"el.tagName === 'A' && el.getAttribute('href') === '/alerts/{ids['open']}'")
    fay.keyboard.press("Enter")
    fay.wait_for_url(f"**/alerts/{ids['open']}")
    tab_to("el.tagName === 'A' && /act=respond/.test(el.getAttribute('href') || '')")
    fay.keyboard.press("Enter")
    fay.wait_for_url(re.compile(r"act=respond"))
    tab_to("el.tagName === 'TEXTAREA'")
    fay.keyboard.type("Contact is rebooked for Saturday with a named supervisor.")
    tab_to("el.tagName === 'BUTTON' && /send|respond/i.test(el.innerText)")
    with fay.expect_navigation():
        fay.keyboard.press("Enter")
    assert "act=" not in fay.url, fay.url
    assert "Contact is rebooked for Saturday" in fay.locator("main").inner_text()
    site.shot(fay, "responded-by-keyboard")


# (test_browser_children's data: R100 open and past alerts, good practice, R101's alert.)
_ = test_browser_children
