"""The web app in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's
sync API) against the app served by uvicorn on a loopback port: the ladder end to end, access by
URL, CSRF, keyboard use and labels, error messages, the Cafcass pause point, hostile input.

Screenshots go to var/test-artifacts/screenshots/<test name>/ (replaced on each run)."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, TEST_PASSWORD, MovableClock, forget_settings, prepare
from .support import tools

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "var" / "test-artifacts" / "screenshots"
ACTION_DUE = "2027-03-05"  # a Friday, four days after the clock's Monday 1 March 2027


# -- the browser and the served app ----------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (skips, saying why, where it cannot run). Not for
    the session: Playwright's sync API keeps an event loop running in the thread until it
    stops, which would turn Prefect's sync calls in later tests into coroutines."""
    if not CHROMIUM.exists():
        tools.missing("Chromium", f"{CHROMIUM} is absent", "apt-get install chromium")
    try:
        from playwright import sync_api
    except ImportError:
        tools.missing("Playwright", "the playwright package is not installed",
                      "pip install -e '.[dev]'")
    playwright = sync_api.sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    except Exception as exc:
        playwright.stop()
        tools.missing("Chromium", f"{CHROMIUM} would not start under Playwright: {exc}",
                      "check that `chromium --headless --no-sandbox --dump-dom about:blank` runs")
    yield chromium
    chromium.close()
    playwright.stop()


_TRAINED: dict[str, Any] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Site:
    """The served app, the browser, and this test's screenshot folder."""

    base: str
    clock: MovableClock
    rt: Any
    browser: Any
    shots: Path
    contexts: list[Any] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    count: int = 0

    def page(self, *, axe: bool = False, **options: Any) -> Any:
        """A new page in a context of its own (its own cookies: one person). `axe`: every
        document the context loads has axe-core (its script given to Chromium once, not sent
        with each page: 90 ms a page), so the page's CSP is bypassed."""
        options = {"viewport": {"width": 1200, "height": 900}, "locale": "en-GB",
                   "timezone_id": "Europe/London", **options}
        if axe:
            options["bypass_csp"] = True
        context = self.browser.new_context(base_url=self.base, **options)
        if axe:
            from .test_browser_children import axe_source

            context.add_init_script(axe_source())
        context.set_default_timeout(30_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("dialog", self._dialog)
        return page

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def shot(self, page: Any, name: str, *, full_page: bool = True) -> Path:
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    def sign_in(self, username: str, **options: Any) -> Any:
        page = self.page(**options)
        page.goto("/login")
        page.fill("#username", username)
        page.fill("#password", TEST_PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(lambda url: "/login" not in url)
        assert page.get_by_role("button", name=re.compile("^Sign out")).is_visible()
        return page


@pytest.fixture
def site(drp_env: Path, monkeypatch: pytest.MonkeyPatch, browser: Any,
         request: pytest.FixtureRequest) -> Iterator[Site]:
    """The app (as the `web` fixture builds it) served by uvicorn on a free loopback port, with
    DRP_BASE_URL naming that http address (so the session cookies are not Secure-only)."""
    import uvicorn

    from drp import runtime as runtime_module
    from drp.web.app import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("DRP_BASE_URL", base)
    forget_settings()
    rt = runtime_module.runtime()
    assert rt.settings.base_url == base
    prepare(rt)
    # The theme classifier trains in a few seconds on first use; every test's database starts
    # with no confirmed themes, so each would train the same one: train it once.
    if "classifier" not in _TRAINED:
        _TRAINED["classifier"] = rt.classifier()
    rt._classifier = _TRAINED["classifier"]
    clock = MovableClock()
    app = create_app(rt, clock)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            pytest.fail(f"the app did not answer {base}/healthz within 15 seconds")
        time.sleep(0.05)

    shots = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    out = Site(base, clock, rt, browser, shots)
    try:
        yield out
    finally:
        for context in out.contexts:
            context.close()
        server.should_exit = True
        thread.join(timeout=10)
        rt.engine.dispose()


# -- helpers ------------------------------------------------------------------------------------

def raise_alert(site: Site, page: Any, summary: str, *, child: str = "R100",
                name: str | None = None, **fields: str) -> int:
    """Raise through the form; the new alert's number."""
    page.goto("/alerts/new")
    page.fill("#child", child)  # typed, the children one may raise for as suggestions
    page.fill("#summary", summary)
    for key, value in fields.items():
        page.fill(f"#{key}", value)
    page.get_by_role("button", name="Raise the alert").click()
    page.wait_for_url(re.compile(r"/alerts/\d+\?done=raised$"))
    if name:
        site.shot(page, name)
    found = re.search(r"/alerts/(\d+)", page.url)
    assert found, page.url
    return int(found.group(1))


def refused_form_page(response: Any) -> bool:
    """The page a refused form redirects to (Post/Redirect/Get), answering with the refusal's
    status."""
    before = response.request.redirected_from
    return before is not None and before.method == "POST"


def banner(page: Any) -> str:
    """The success banner's message (GOV.UK's notification banner), as a sentence's middle
    says it (its first letter in lower case)."""
    said = str(page.locator(".govuk-notification-banner__content").inner_text()).strip()
    return said[:1].lower() + said[1:]


def timeline(page: Any) -> list[str]:
    """Each timeline entry: what happened, when and who (by name), what was said."""
    return [" ".join(t.split()) for t in
            page.locator("ol.drp-timeline > li").all_inner_texts()]


def standing(page: Any, key: str) -> Any:
    """The value of a row of the alert's summary ("Where it stands") by its key."""
    return page.locator(f"#standing .govuk-summary-list__row:has(dt:text-is('{key}'))"
                        " dd.govuk-summary-list__value")


def status_line(page: Any) -> str:
    """Where the alert stands in a line: an open alert's stage (with its tags: on hold,
    referred to Cafcass), or how and when a closed one ended ("Resolved on ..., at ...")."""
    row = standing(page, "Closed")
    row = row if row.count() else standing(page, "Stage")
    return " ".join(str(row.inner_text()).split())


def is_open(page: Any) -> bool:
    """The alert is open: its page says who must act (a closed one says how it closed)."""
    return bool(standing(page, "Who must act").count() == 1
                and standing(page, "Closed").count() == 0)


def open_form(page: Any, action: str) -> None:
    """Opens an action's form by its button on the alert's page (?act=<action>)."""
    page.locator(f"#offer-{action}").click()
    page.wait_for_url(re.compile(rf"\?act={action}#act$"))


def fill_date(page: Any, name: str, iso: str) -> None:
    """A date into GOV.UK's date input (the day's id is the date's name)."""
    year, month, day = iso.split("-")
    page.fill(f"#{name}", day)
    page.fill(f"#{name}-month", month)
    page.fill(f"#{name}-year", year)


def alert_links(page: Any) -> list[str]:
    return [a.strip() for a in page.locator("main table a").all_inner_texts()]


def later(site: Site, minutes: int = 5) -> None:
    """Time passes between people's steps (less than the 30-minute idle timeout)."""
    site.clock.move(minutes=minutes)


# -- 1. the ladder ------------------------------------------------------------------------------

def test_ladder_in_the_browser_without_javascript(site: Site) -> None:
    ada = site.sign_in("iro.ada", java_script_enabled=False)
    assert ada.url.endswith("/my-alerts")
    site.shot(ada, "ada-my-alerts-empty")

    # Raise: a suggested theme first, then the alert.
    ada.goto("/alerts/new")
    assert ada.locator("#children-list option").evaluate_all(
        "options => options.map(o => o.value)") == ["R100"]
    ada.fill("#child", "R100")
    ada.fill("#summary", "Contact with birth mother cancelled at short notice three times")
    ada.fill("#detail", "Family time has been cancelled three times this month because no"
                        " supervisor was available.")
    ada.fill("#impact", "R100 is upset and anxious before each planned contact.")
    ada.fill("#outcome_wanted", "A reliable contact schedule with a named supervisor.")
    site.shot(ada, "ada-raise-form-filled")
    ada.get_by_role("button", name="Suggest a theme").click()
    ada.wait_for_load_state()
    hint = ada.locator("#theme-suggestion").inner_text()
    assert hint.startswith("drp suggests "), hint
    assert "% confident" in hint
    assert ada.input_value("#summary").startswith("Contact with birth mother")  # kept
    assert "supervisor" in ada.input_value("#detail")
    site.shot(ada, "ada-raise-form-suggestion")
    ada.get_by_role("button", name="Raise the alert").click()
    ada.wait_for_url(re.compile(r"/alerts/\d+\?done=raised$"))
    aid = int(re.findall(r"/alerts/(\d+)", ada.url)[0])
    assert "the alert was raised" in banner(ada)
    assert "Informal resolution" in status_line(ada)
    assert standing(ada, "Who must act").inner_text().startswith(
        "Fay Manager, East A, must respond by ")
    site.shot(ada, "ada-alert-raised")

    # The team manager finds it in her inbox and responds with an agreed action.
    later(site)
    fay = site.sign_in("tm.fay", java_script_enabled=False)
    assert fay.url.endswith("/inbox")
    assert fay.locator("h1").inner_text() == "Alerts awaiting your response"
    assert f"Alert {aid}" in alert_links(fay)
    site.shot(fay, "fay-inbox")
    fay.get_by_role("link", name=f"Alert {aid}", exact=True).click()
    open_form(fay, "respond")
    fay.fill("#message", "Agreed: a named supervisor for every contact from next week.")
    fay.fill("#action1", "Book a named contact supervisor")
    fill_date(fay, "action1_due", ACTION_DUE)
    site.shot(fay, "fay-respond-form")
    fay.get_by_role("button", name="Send response").click()
    fay.wait_for_url(f"**/alerts/{aid}?done=respond")
    assert "your response was recorded" in banner(fay)
    actions = fay.locator("table:has(caption:text-is('Agreed actions')) tbody tr")
    assert actions.count() == 1
    assert "Book a named contact supervisor" in actions.inner_text()
    assert "5 March 2027" in actions.inner_text()
    site.shot(fay, "fay-responded")
    fay.goto("/inbox")
    assert f"Alert {aid}" not in alert_links(fay)  # answered: no longer awaiting her

    # The IRO escalates, bypassing stage 1 to the head of service.
    later(site)
    ada.goto(f"/alerts/{aid}")
    open_form(ada, "escalate")
    ada.fill("#reason-escalate", "The same cancellations continued after the response.")
    ada.select_option("#to", label="Stage 2: Head of service")
    site.shot(ada, "ada-escalate-form")
    ada.locator("#do-escalate").get_by_role("button", name="Escalate").click()
    ada.wait_for_url(f"**/alerts/{aid}?done=escalate")
    assert "the alert was escalated" in banner(ada)
    assert "Stage 2: Head of service" in status_line(ada)
    site.shot(ada, "ada-escalated")

    # The head of service sees it on /outstanding and in her inbox, and responds.
    later(site)
    ivy = site.sign_in("hos.ivy", java_script_enabled=False)
    assert ivy.url.endswith("/figures")  # her start page: the figures at a glance
    site.shot(ivy, "ivy-figures")
    ivy.goto("/outstanding")
    assert f"Alert {aid}" in alert_links(ivy)
    site.shot(ivy, "ivy-outstanding")
    ivy.goto("/inbox")
    assert f"Alert {aid}" in alert_links(ivy)
    site.shot(ivy, "ivy-inbox")
    ivy.get_by_role("link", name=f"Alert {aid}", exact=True).click()
    open_form(ivy, "respond")
    ivy.fill("#message", "I have funded a dedicated contact supervisor for R100.")
    ivy.get_by_role("button", name="Send response").click()
    ivy.wait_for_url(f"**/alerts/{aid}?done=respond")
    assert "your response was recorded" in banner(ivy)
    site.shot(ivy, "ivy-responded")

    # The IRO resolves it.
    later(site)
    ada.goto(f"/alerts/{aid}")
    open_form(ada, "resolve")
    ada.fill("#outcome", "Contact now happens weekly with a named supervisor.")
    ada.locator("#do-resolve").get_by_role("button", name="Resolve").click()
    ada.wait_for_url(f"**/alerts/{aid}?done=resolve")
    assert "the alert was resolved" in banner(ada)
    assert status_line(ada).startswith("Resolved")
    steps = timeline(ada)
    site.shot(ada, "ada-resolved-timeline")
    expected = [
        ("Ada Iro", "Raised at Informal resolution"),
        ("Fay Manager", "Responded"),
        ("Fay Manager", "Action agreed"),
        ("Ada Iro", "Escalated from Informal resolution to Stage 2: Head of service"),
        ("Ivy Head", "Responded"),
        ("Ada Iro", "Resolved"),
    ]
    assert len(steps) == len(expected), steps
    for step, (actor, what) in zip(steps, expected, strict=True):
        assert f", {actor} " in step and what in step, (step, actor, what)
    assert "Contact now happens weekly" in steps[-1]

    # The IRO manager sees it, closed, among all alerts.
    cat = site.sign_in("irom.cat", java_script_enabled=False)
    assert cat.url.endswith("/figures")
    cat.get_by_role("link", name="All alerts").click()
    cat.wait_for_url("**/alerts")
    row = cat.locator("main table tbody tr", has=cat.get_by_role("link", name=f"Alert {aid}",
                                                                  exact=True))
    assert row.locator("td[data-label='Status']").inner_text().strip() == "Resolved"
    site.shot(cat, "cat-all-alerts")
    assert not site.dialogs


# -- 2. access by URL -------------------------------------------------------------------------

def test_another_iros_alert_is_not_reachable_by_url(site: Site) -> None:
    ada = site.sign_in("iro.ada")
    secret = "Placement breakdown risk for R100 not shared with the IRO"
    aid = raise_alert(site, ada, secret)

    ben = site.sign_in("iro.ben")
    answer = ben.goto(f"/alerts/{aid}")
    assert answer is not None and answer.status == 404
    assert ben.locator("h1").inner_text() == "Sorry, that did not work"
    body = ben.locator("body").inner_text()
    assert secret not in body and "R100" not in body
    site.shot(ben, "ben-404-ada-alert")
    seen = ben.locator("main p.prewrap").inner_text()

    # Indistinguishable from an alert that does not exist, and the other routes say the same.
    missing = ben.goto("/alerts/987654")
    assert missing is not None and missing.status == 404
    assert ben.locator("main p.prewrap").inner_text() == seen.replace(str(aid), "987654")
    for path in (f"/alerts/{aid}/refer", "/no/such/page"):
        answer = ben.goto(path)
        assert answer is not None and answer.status == 404, path
        assert secret not in ben.locator("body").inner_text()
    assert "There is no such page" in ben.locator("main").inner_text()
    site.shot(ben, "ben-404-no-such-page")
    ben.goto("/my-alerts")
    assert f"Alert {aid}" not in alert_links(ben)


def test_not_found_alert_page_speaks_to_web_users(site: Site) -> None:
    ben = site.sign_in("iro.ben")
    answer = ben.goto("/alerts/987654")
    assert answer is not None and answer.status == 404
    site.shot(ben, "ben-404-message")
    text = ben.locator("main").inner_text()
    assert "drp alert list" not in text
    assert "There is no such page" in text


# -- 3. CSRF ---------------------------------------------------------------------------------

def test_a_form_posted_without_its_csrf_token_is_refused(site: Site) -> None:
    ada = site.sign_in("iro.ada")
    ada.goto("/alerts/new")
    ada.fill("#child", "R100")
    ada.fill("#summary", "This alert must never be saved")
    removed = ada.evaluate("""() => {
        const inputs = document.querySelectorAll('main form input[name="csrf_token"]');
        inputs.forEach(e => e.remove());
        return inputs.length; }""")
    assert removed == 1
    with ada.expect_response(lambda r: r.request.method == "POST"
                             and r.url.endswith("/alerts/new")) as posted:
        ada.get_by_role("button", name="Raise the alert").click()
    assert posted.value.status == 403
    assert ada.locator("h1").inner_text() == "Sorry, that did not work"
    assert "was not sent by drp" in ada.locator("main").inner_text()
    site.shot(ada, "ada-raise-without-csrf-403")
    ada.goto("/my-alerts")
    assert "There is nothing to show here." in ada.locator("main").inner_text()

    # The same for an action on an alert, posted with the page's own cookies.
    aid = raise_alert(site, ada, "Review delayed by two months")
    before = timeline(ada)
    open_form(ada, "resolve")
    token = ada.locator("#do-resolve input[name=csrf_token]").input_value()
    for form, headers in (
        ({"outcome": "Forged outcome"}, {}),
        ({"outcome": "Forged outcome", "csrf_token": "not-the-token"}, {}),
        ({"outcome": "Forged outcome", "csrf_token": token},
         {"Origin": "https://evil.example"}),
    ):
        answer = ada.request.post(f"/alerts/{aid}/resolve", form=form, headers=headers,
                                  max_redirects=0)
        assert answer.status == 403, (form, headers, answer.status)
    ada.goto(f"/alerts/{aid}")
    assert is_open(ada)
    assert timeline(ada) == before
    site.shot(ada, "ada-alert-unchanged-after-forgeries")
    # The real form still works (the refusals did not spoil the session).
    open_form(ada, "resolve")
    ada.fill("#outcome", "Review booked")
    ada.locator("#do-resolve").get_by_role("button", name="Resolve").click()
    ada.wait_for_url(f"**/alerts/{aid}?done=resolve")


# -- 4. keyboard and labels -----------------------------------------------------------------------

FOCUSABLE = """() => Array.from(document.querySelectorAll(
    'a[href], button, input, select, textarea, [tabindex]'))
  .filter(e => e.tabIndex >= 0 && !e.disabled && e.type !== 'hidden')
  .map(e => e.outerHTML.slice(0, 120))"""

FIELDS = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(e => e.type !== 'hidden')
  .map(e => ({id: e.id, name: e.name,
    same_id: e.id ? document.querySelectorAll('#' + CSS.escape(e.id)).length : 0,
    labels: e.id ? document.querySelectorAll('label[for="' + CSS.escape(e.id) + '"]').length
                 : 0}))"""


def active(page: Any) -> str:
    return str(page.evaluate(
        "() => (document.activeElement.id || document.activeElement.className || '')"
        " + '|' + document.activeElement.tagName"))


def assert_labelled(page: Any, where: str) -> int:
    fields = page.evaluate(FIELDS)
    assert fields, where
    for f in fields:
        assert f["id"], (where, f)
        assert f["same_id"] == 1, (where, f)  # a label's for= names exactly one element
        assert f["labels"] == 1, (where, f)
        label = page.locator(f'label[for="{f["id"]}"]')
        assert label.is_visible(), (where, f)
        assert label.inner_text().strip(), (where, f)
    return len(fields)


def test_keyboard_sign_in_skip_link_and_labels(site: Site) -> None:
    page = site.page()
    page.goto("/login")
    site.shot(page, "login-page")
    first = page.evaluate(FOCUSABLE)[0]
    assert first.startswith("<a ") and 'href="#main-content"' in first \
        and "govuk-skip-link" in first, first
    skip = page.locator("a.govuk-skip-link")
    assert skip.bounding_box()["width"] <= 1  # hidden (GOV.UK's 1 px clip) until focused
    page.keyboard.press("Tab")
    assert active(page) == "govuk-skip-link|A"
    assert skip.inner_text() == "Skip to main content"
    assert skip.bounding_box()["width"] > 1  # shown when focused
    site.shot(page, "login-skip-link-focused", full_page=False)
    page.keyboard.press("Enter")
    page.wait_for_url("**/login#main-content", timeout=5000)  # the fragment lands later
    assert page.url.endswith("/login#main-content")
    page.keyboard.press("Tab")  # from the skip target: the first field of the form
    assert active(page) == "username|INPUT"
    page.keyboard.type("iro.ada")
    page.keyboard.press("Tab")
    assert active(page) == "password|INPUT"
    page.keyboard.type(TEST_PASSWORD)
    site.shot(page, "login-typed", full_page=False)
    page.keyboard.press("Enter")
    page.wait_for_url("**/my-alerts")
    site.shot(page, "ada-signed-in-by-keyboard")

    # Signed in: the skip link is still first, then labels on the raise form and alert page.
    page.goto("/alerts/new")
    assert "govuk-skip-link" in page.evaluate(FOCUSABLE)[0]
    page.keyboard.press("Tab")
    assert active(page) == "govuk-skip-link|A"
    assert assert_labelled(page, "raise form") >= 7
    site.shot(page, "raise-form")
    aid = raise_alert(site, page, "Care plan not updated after the review")
    # Each form the IRO's buttons open (one at a time) has every field labelled.
    acts = re.findall(r'href="\?act=([\w-]+)#act"', page.content())
    assert {"escalate", "resolve", "withdraw", "hold", "extend"} <= set(acts), acts
    labelled = 0
    for act in acts:
        page.goto(f"/alerts/{aid}?act={act}")
        labelled += assert_labelled(page, f"alert page (IRO), {act}")
    assert labelled >= 5
    page.goto(f"/alerts/{aid}?act=hold")
    site.shot(page, "alert-page-iro")
    page.goto(f"/alerts/{aid}/refer")
    assert_labelled(page, "Cafcass pause point")
    site.shot(page, "refer-page")

    fay = site.sign_in("tm.fay")
    fay.goto(f"/alerts/{aid}")
    open_form(fay, "respond")
    assert fay.locator("#do-respond").is_visible()
    assert assert_labelled(fay, "alert page (team manager)") >= 10
    site.shot(fay, "alert-page-team-manager")


# -- 5. error messages ---------------------------------------------------------------------------

def test_errors_show_at_the_top_and_next_to_the_field(site: Site) -> None:
    ada = site.sign_in("iro.ada")
    ada.goto("/alerts/new")
    ada.fill("#child", "R100")
    ada.fill("#detail", "Something the IRO typed before forgetting the summary.")
    with ada.expect_response(refused_form_page) as posted:
        ada.get_by_role("button", name="Raise the alert").click()
    assert posted.value.status == 422
    ada.wait_for_load_state()
    summary = ada.locator(".govuk-error-summary:has([role=alert])")
    assert summary.is_visible()
    assert summary.locator("h2").inner_text() == "There is a problem"
    link = summary.locator("a")
    assert link.count() == 1 and link.get_attribute("href") == "#summary"
    assert "Enter the summary" in link.inner_text()
    # At the top: the first thing in main, above the heading.
    assert ada.evaluate("() => document.querySelector('main').firstElementChild.className") \
        == "govuk-error-summary"
    assert summary.bounding_box()["y"] < ada.locator("h1").bounding_box()["y"]
    # Next to the field: inside the summary field's group, before the input.
    group = ada.locator(".govuk-form-group--error")
    assert group.count() == 1
    assert group.locator("#summary").count() == 1
    message = group.locator(".govuk-error-message")
    assert message.is_visible() and "Enter the summary" in message.inner_text()
    assert message.bounding_box()["y"] < ada.locator("#summary").bounding_box()["y"]
    assert "forgetting the summary" in ada.input_value("#detail")  # what was typed is kept
    site.shot(ada, "raise-empty-summary-errors")
    link.click()  # GOV.UK's error summary moves focus to the field itself
    ada.wait_for_function("() => document.activeElement.id === 'summary'", timeout=5000)
    assert active(ada) == "summary|INPUT"
    ada.goto("/my-alerts")
    assert "There is nothing to show here." in ada.locator("main").inner_text()


# -- 6. the Cafcass pause point ------------------------------------------------------------------

def test_cafcass_referral_needs_the_legal_advice(site: Site) -> None:
    ada = site.sign_in("iro.ada")
    aid = raise_alert(site, ada, "Permanence plan drifting for a year", name="alert-raised")
    ada.locator("#offer-refer").click()
    ada.wait_for_url(f"**/alerts/{aid}/refer")
    assert ada.locator("h1").inner_text() == "Refer to Cafcass?"
    assert ada.input_value("#legal_advice") == ""
    site.shot(ada, "refer-pause-point")

    ada.fill("#reason", "The local authority has not acted on the plan for a year.")
    with ada.expect_response(refused_form_page) as posted:
        ada.get_by_role("button", name="Refer to Cafcass").click()
    assert posted.value.status == 422
    assert ada.locator(".govuk-error-summary a").get_attribute("href") == "#legal_advice"
    assert "Enter who gave the legal advice" in \
        ada.locator(".govuk-error-summary").inner_text()
    assert "Enter who gave the legal advice" in \
        ada.locator(".govuk-form-group--error .govuk-error-message").inner_text()
    assert "has not acted" in ada.input_value("#reason")  # kept
    site.shot(ada, "refer-without-legal-advice")
    ada.goto(f"/alerts/{aid}")
    assert is_open(ada)
    assert [s for s in timeline(ada) if "Referred" in s] == []

    ada.goto(f"/alerts/{aid}/refer")
    ada.fill("#legal_advice", "Legal services (duty solicitor)")
    fill_date(ada, "advised_on", site.clock.now().date().isoformat())
    ada.fill("#reason", "The local authority has not acted on the plan for a year.")
    ada.get_by_role("button", name="Refer to Cafcass").click()
    ada.wait_for_url(f"**/alerts/{aid}?done=refer")
    assert "the referral to Cafcass was recorded; the alert stays open" in banner(ada)
    # Concurrent with the local process: still open at its stage, its forms still there.
    assert is_open(ada) and status_line(ada).startswith("Informal resolution")
    assert "Referred to Cafcass" in status_line(ada)  # the stage's tag
    assert "Referred to Cafcass" in timeline(ada)[-1]
    panel = ada.locator("#cafcass-response")
    assert panel.inner_text() == "Awaiting Cafcass's response"
    assert ada.locator("#offer-resolve").is_visible() and ada.locator("#offer-refer").count() == 0
    site.shot(ada, "referred")

    # Later, Cafcass answers: the IRO records it (a choice is needed first).
    later(site)
    open_form(ada, "cafcass")
    with ada.expect_response(refused_form_page) as posted:
        ada.locator("#do-cafcass").get_by_role("button", name="Record the response").click()
    assert posted.value.status == 422
    assert ada.locator(".govuk-error-summary a").get_attribute("href") == "#response"
    ada.get_by_label("Cafcass issued proceedings").check()
    ada.fill("#note", "Care proceedings issued; a children's guardian is appointed.")
    ada.locator("#do-cafcass").get_by_role("button", name="Record the response").click()
    ada.wait_for_url(f"**/alerts/{aid}?done=cafcass")
    assert panel.inner_text().startswith("Cafcass issued proceedings (recorded ")
    assert "a children's guardian is appointed" in panel.inner_text()
    assert "Cafcass's response recorded" in timeline(ada)[-1]
    assert is_open(ada) and status_line(ada).startswith("Informal resolution")
    site.shot(ada, "cafcass-response")


# -- 7. hostile input ---------------------------------------------------------------------------

RLO = "\u202e"
HOSTILE = f"<script>alert(1)</script> {{{{ 7*7 }}}} <img src=x onerror=alert(2)> {RLO}fdp.exe"
# drp drops bidirectional overrides from what people type ("fdp.exe" would read "exe.pdf").
SHOWN = HOSTILE.replace(RLO, "")


def test_hostile_input_is_shown_inert(site: Site) -> None:
    # CSP would block an injected inline script anyway: bypass it, so the escaping is tested.
    ada = site.sign_in("iro.ada", bypass_csp=True)
    assert "{{ 7*7 }}" in HOSTILE
    aid = raise_alert(site, ada, HOSTILE, name="alert-hostile-summary")
    heading = ada.locator("h1 .prewrap")
    assert heading.text_content() == SHOWN  # the literal text, kept but for the override
    assert heading.locator("script, img").count() == 0
    assert ada.locator("main script, main img").count() == 0
    assert "49" not in ada.locator("h1").inner_text()
    assert ada.get_by_text("<script>alert(1)</script>").first.is_visible()
    assert ada.get_by_text("{{ 7*7 }}").first.is_visible()
    # The right-to-left override stays inside the summary: the text before it reads normally.
    prefix = ada.evaluate("""() => {
        const h1 = document.querySelector('h1');
        const range = document.createRange();
        range.selectNodeContents(h1.firstChild);
        const span = h1.querySelector('.prewrap');
        const first = span.getClientRects()[0];
        return [range.getBoundingClientRect().right, first.left, h1.firstChild.textContent,
                range.getBoundingClientRect().top, first.top];
    }""")
    assert prefix[2] == f"Alert {aid}: ", prefix
    assert prefix[0] <= prefix[1] + 1 and abs(prefix[3] - prefix[4]) < 5, prefix
    assert SHOWN in timeline(ada)[0]
    # In the lists too.
    ada.goto("/my-alerts")
    summaries = "main table td[data-label='Alert'] .govuk-body-s"
    assert ada.locator(summaries).first.text_content() == SHOWN
    assert ada.locator("main script, main img").count() == 0
    site.shot(ada, "my-alerts-hostile-summary")
    fay = site.sign_in("tm.fay", bypass_csp=True)
    assert fay.locator(summaries).first.text_content() == SHOWN
    fay.goto(f"/alerts/{aid}")
    assert fay.locator("h1 .prewrap").text_content() == SHOWN
    site.shot(fay, "fay-alert-hostile-summary")
    # A response with the same text is inert too.
    open_form(fay, "respond")
    fay.fill("#message", HOSTILE)
    fay.get_by_role("button", name="Send response").click()
    fay.wait_for_url(f"**/alerts/{aid}?done=respond")
    assert fay.locator("ol.drp-timeline .prewrap").last.text_content() == SHOWN
    assert fay.locator("main script, main img").count() == 0
    site.shot(fay, "fay-response-hostile")
    ada.goto(f"/alerts/{aid}")
    ada.wait_for_timeout(200)  # time for any injected handler to have fired
    assert site.dialogs == []


# -- a gap: what the IRO wrote is never shown ----------------------------------------------------

def test_the_manager_can_read_what_the_iro_wrote(site: Site) -> None:
    ada = site.sign_in("iro.ada")
    aid = raise_alert(site, ada, "School transport stopped",
                      detail="Transport ended on 1 February without notice.",
                      impact="R100 has missed nine school days.",
                      outcome_wanted="Transport restored this week.")
    fay = site.sign_in("tm.fay")
    fay.goto(f"/alerts/{aid}")
    site.shot(fay, "fay-alert-without-detail")
    text = fay.locator("main").inner_text()
    assert "Transport ended on 1 February without notice." in text
    assert "R100 has missed nine school days." in text
    assert "Transport restored this week." in text


def test_the_second_page_uses_the_css_the_first_fetched(site: Site) -> None:
    """drp/web/staticfiles.py: GOV.UK Frontend's 130 KB of CSS is fetched once, not per page."""
    page = site.sign_in("irom.cat")
    css = "() => performance.getEntriesByType('resource').filter(e => e.name.includes(" \
          "'govuk-frontend.min.css')).map(e => e.transferSize)"
    page.goto("/alerts")
    page.goto("/outstanding")
    sizes = page.evaluate(css)
    assert sizes == [0], sizes  # from the browser's cache: nothing transferred
