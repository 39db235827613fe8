"""The child's page, search from the header and the print view for the child's file in a real
headless Chromium (test_browser's served app and browser), checked by axe-core, the npm
package's axe.min.js, for serious and critical violations on each page, at 1280 and 375 px,
and printed (print media) without navigation or forms.

axe-core is found at $DRP_AXE_JS, else node_modules/axe-core/axe.min.js in the project or
Debian's and npm's global places; where it is missing the test skips (fails under
DRP_TEST_STRICT=1) saying how to install it."""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Any

from drp import db
from drp.alerts import ActionIn
from tests import test_browser
from tests.conftest import ROOT
from tests.support import tools

from .test_browser import Site

# test_browser's fixtures: one Chromium for the module, the app served on a loopback port.
browser = test_browser.browser
site = test_browser.site

AXE_PLACES = (ROOT / "node_modules" / "axe-core" / "axe.min.js",
              Path("/usr/share/nodejs/axe-core/axe.min.js"),
              Path("/usr/lib/node_modules/axe-core/axe.min.js"),
              Path("/usr/local/lib/node_modules/axe-core/axe.min.js"))
SERIOUS = ("serious", "critical")
# Read at import: the app's fixtures clear DRP_* from the environment of each test.
AXE_JS = os.environ.get("DRP_AXE_JS")


def axe_source() -> str:
    for place in ([Path(AXE_JS)] if AXE_JS else []) + list(AXE_PLACES):
        if place.is_file():
            return place.read_text(encoding="utf-8")
    return tools.missing("axe-core", "axe.min.js was not found (DRP_AXE_JS, node_modules)",
                         "npm install axe-core (in the project), or set DRP_AXE_JS to its"
                         " axe.min.js")


def serious_violations(page: Any, source: str) -> list[str]:
    """axe-core's serious and critical violations on the page as it is (WCAG 2.2 A and AA and
    best practice), one line each: the rule and the first elements it names."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=source)  # (the context bypasses the page's CSP)
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [f"{v['id']} ({v['impact']}): {', '.join(v['nodes'])}" for v in result
            if v["impact"] in SERIOUS]


def prepare_child(site: Site) -> dict[str, int]:
    """R100 (iro.ada's, team east-a) with an open alert, a resolved one with a response and an
    action done, and good practice; R101 (iro.ben's, the same team) with an open alert."""
    due = date(2027, 3, 5)

    def do(fn: Any) -> Any:
        with db.transaction(site.rt.engine) as s:
            return fn(site.rt.service(s, site.clock))

    def raise_one(iro: str, child: str, summary: str) -> int:
        return int(do(lambda s: s.raise_alert(iro, child, summary, stage="informal",
                                              theme="permanence_planning", separate=True).id))

    opened = raise_one("iro.ada", "R100", "Contact with birth mother cancelled three times")
    past = raise_one("iro.ada", "R100", "Pathway plan not updated after the review")
    do(lambda s: s.respond(past, "tm.fay", "The plan will be updated this week",
                           [ActionIn("Update the pathway plan", due)]))
    do(lambda s: s.action_done(past, 1, "tm.fay"))
    do(lambda s: s.resolve(past, "iro.ada", "The pathway plan was updated and shared"))
    do(lambda s: s.record_good_practice("iro.ada", "R100", "Thorough life-story work"))
    other = raise_one("iro.ben", "R101", "Placement stability meeting not held")
    return {"open": opened, "past": past, "other": other}


def test_search_child_page_and_print_view_in_chromium_with_axe(site: Site) -> None:
    source = axe_source()
    ids = prepare_child(site)
    fay = site.sign_in("tm.fay", axe=True, viewport={"width": 1280, "height": 900})

    # Search from the header: the start of a reference lists the children she may see.
    fay.get_by_label("Child reference or alert number").first.fill("r10")
    fay.locator("form.drp-search").get_by_role("button", name="Search").click()
    fay.wait_for_url(re.compile(r"/search\?q=r10$"))
    assert fay.locator("main .search-results a").all_inner_texts() == ["Child R100",
                                                                       "Child R101"]
    site.shot(fay, "search-results-1280")
    assert serious_violations(fay, source) == []

    # The child's page: open and past alerts, good practice, people by name.
    fay.get_by_role("link", name="Child R100", exact=True).click()
    fay.wait_for_url("**/children/R100")
    assert fay.locator("h1").inner_text() == "Child R100"
    opened = fay.locator("table:below(#open)").first.inner_text()
    assert "Contact with birth mother" in opened and "Ada Iro" in opened
    assert "Pathway plan not updated" in fay.locator("table:below(#past)").first.inner_text()
    assert "Thorough life-story work" in fay.locator("#good-practice + ul").inner_text()
    site.shot(fay, "child-page-1280")
    assert serious_violations(fay, source) == []

    # An exact reference goes straight to the child; an alert's number to the alert.
    fay.locator("#header-search-q").fill("R101")
    fay.locator("#header-search-q").press("Enter")
    fay.wait_for_url("**/children/R101")
    assert "Placement stability meeting not held" in fay.locator("main").inner_text()
    fay.locator("#header-search-q").fill(f"#{ids['past']}")
    fay.locator("#header-search-q").press("Enter")
    fay.wait_for_url(f"**/alerts/{ids['past']}")

    # The print view for the child's file.
    fay.goto(f"/alerts/{ids['past']}/print")
    text = fay.locator("body").inner_text()
    assert text.startswith("OFFICIAL-SENSITIVE") and text.rstrip().endswith("OFFICIAL-SENSITIVE")
    assert "Printed 1 Mar 2027 09:00 by Fay Manager" in text
    for words in ("Chronology", "The plan will be updated this week", "Update the pathway plan",
                  "The pathway plan was updated and shared"):
        assert words in text, words
    assert fay.locator("form, nav").count() == 0
    site.shot(fay, "print-view-1280")
    assert serious_violations(fay, source) == []
    fay.emulate_media(media="print")
    assert not fay.locator(".screen-only").is_visible()
    # Printed on A4: this short file takes one or two sheets, not pages of menus and forms.
    pdf = fay.pdf(format="A4")
    (site.shots / "print-view.pdf").write_bytes(pdf)
    sheets = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= sheets <= 2, sheets

    # Printing any page hides the navigation, the search form and the forms.
    fay.goto(f"/alerts/{ids['open']}")
    assert not fay.locator("header nav").is_visible()
    assert not fay.locator("form.drp-search").is_visible()
    assert fay.locator("main form").count() == 0 or not fay.locator("main form").first.is_visible()
    assert fay.locator("h1").is_visible()
    site.shot(fay, "alert-printed")
    fay.emulate_media(media="screen")
    assert fay.locator("header nav").is_visible()

    # At 375 px: the child's page and the print view, without a page-wide sideways scroll.
    fay.set_viewport_size({"width": 375, "height": 800})
    for url, name in (("/children/R100", "child-page-375"),
                      (f"/alerts/{ids['past']}/print", "print-view-375")):
        fay.goto(url)
        wide = fay.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 375, (url, wide)
        site.shot(fay, name)
        assert serious_violations(fay, source) == []


def test_lists_at_375_px_keep_each_rows_status_and_overdue_tag_in_sight(site: Site) -> None:
    """Every row of a list at 375 px shows its status tag (and the overdue one where the alert
    is overdue) within the screen's width; no column is squeezed so that its words break
    letter by letter; no page-wide sideways scroll. The figures page too."""
    def do(fn: Any) -> Any:
        with db.transaction(site.rt.engine) as s:
            return fn(site.rt.service(s, site.clock))

    late = int(do(lambda s: s.raise_alert(
        "iro.ada", "R100", "Contact with birth mother cancelled three times",
        due_on=date(2027, 3, 2), separate=True).id))
    held = int(do(lambda s: s.raise_alert("iro.ben", "R200", "Placement stability meeting"
                                          " not held", separate=True).id))
    do(lambda s: s.hold(held, "iro.ben", "Court hearing", date(2027, 3, 19)))
    do(lambda s: s.raise_alert("iro.ben", "R101", "Pathway plan not updated", separate=True))
    site.clock.move(days=2)  # 3 March: the first alert is overdue
    cat = site.sign_in("irom.cat", viewport={"width": 375, "height": 800})
    for url in ("/alerts", "/outstanding", "/alerts?status=overdue", "/figures"):
        cat.goto(url)
        wide = cat.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 375, (url, wide)
        site.shot(cat, "list-375-" + re.sub(r"\W+", "-", url).strip("-"))
        if url == "/figures":
            continue
        rows = cat.locator("main table tbody tr")
        assert rows.count() >= 1, url
        for i in range(rows.count()):
            row = rows.nth(i)
            tag = row.locator('td[data-label="Status"] .govuk-tag').first
            assert tag.is_visible(), (url, i)
            box = tag.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
            alert = row.locator('td[data-label="Alert"] a').first.inner_text()
            if alert == f"Alert {late}":
                overdue = row.get_by_text("Overdue", exact=True)
                assert overdue.is_visible() and "govuk-tag--red" in (
                    overdue.get_attribute("class") or ""), url
            # Words whole: every cell's value is wider than a long word needs.
            for cell in row.locator("td > div").all():
                cell_box = cell.bounding_box()
                assert cell_box is not None and cell_box["width"] >= 150, (url, i, cell_box)
