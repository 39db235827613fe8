"""The dispute report's page (/reports/disputes) offers what `drp report disputes` offers: the
comparison (previous, last-year, both, none) and the report as Word, CSV, HTML for printing
and JSON, each for the same period and comparison; and its figures count the alerts the
reader's lists show them: a head of service's services only, the whole council for the IRO
manager and the senior managers."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pytest
from sqlmodel import Session

from drp import db
from drp.reporting.figures import report
from drp.web.routes.reports import DOCX, _figures

from .conftest import backends, sign_in

PERIOD = "from=2027-02-01&to=2027-03-31"
# Five concerns on 1 March 2027 (the clock's day): three in East Service (R100 twice, R101),
# two in West Service (R200).
RAISED = (("iro.ada", "R100"), ("iro.ada", "R100"), ("iro.ben", "R101"),
          ("iro.ben", "R200"), ("iro.ben", "R200"))


def raise_five(rt: Any, clock: Any) -> None:
    for n, (iro, child) in enumerate(RAISED):
        with db.transaction(rt.engine) as s:
            rt.service(s, clock).raise_alert(iro, child, f"Concern {n} for {child}",
                                             stage="informal", theme="permanence_planning",
                                             separate=True)


def report_json(client: Any, extra: str = "") -> dict[str, Any]:
    r = client.get(f"/reports/disputes?{PERIOD}&format=json{extra}")
    assert r.status_code == 200, r.text[:500]
    return dict(r.json())


@backends
def test_a_head_of_service_counts_only_their_services_alerts(web_on: Any) -> None:
    app, clock, rt = web_on
    raise_five(rt, clock)
    expected = {"hos.ivy": (3, "East Service"), "hos.jon": (2, "West Service"),
                "irom.cat": (5, "the whole council"), "ad.kim": (5, "the whole council"),
                "dcs.lou": (5, "the whole council")}
    for who, (raised, whose) in expected.items():
        client = sign_in(app, who)
        figures = report_json(client)
        assert figures["raised"] == raised, who
        assert figures["counts"] == whose, who
        assert f'<strong id="report-scope">{whose}</strong>' in client.get(
            f"/reports/disputes?{PERIOD}").text, who
    east = report_json(sign_in(app, "hos.ivy"))
    assert east["children"] == 2  # R100 and R101
    assert "R200" not in str(east) and "west-a" not in str(east["by_team"])
    # The downloads are filtered alike: the CSV's count of alerts raised.
    text = sign_in(app, "hos.jon").get(f"/reports/disputes?{PERIOD}&format=csv").text
    assert "West Service" in sign_in(app, "hos.jon").get(
        f"/reports/disputes?{PERIOD}&format=html").text
    rows = list(csv.reader(io.StringIO(text)))
    raised_rows = [row for row in rows if row and row[0] == "Concerns raised"]
    assert raised_rows and raised_rows[0][1] == "2", raised_rows


def test_the_filtered_report_has_every_key_of_the_whole_one(web: Any) -> None:
    """The page's filtered report (the histories the person may see, through the same
    steps as drp.reporting.figures.report) keeps report()'s shape."""
    _app, clock, rt = web
    raise_five(rt, clock)
    for compare in ("previous", "both", "none"):
        with Session(rt.engine) as s:
            whole = report(s, rt.protocol, rt.calendar, rt.taxonomy, rt.settings.tz,
                           date(2027, 2, 1), date(2027, 3, 31), compare=compare)
            everything = _figures(s, rt, date(2027, 2, 1), date(2027, 3, 31), compare,
                                  alert_ids={1, 2, 3, 4, 5})
            nothing = _figures(s, rt, date(2027, 2, 1), date(2027, 3, 31), compare, set())
        assert everything == whole
        assert set(nothing) == set(whole) and nothing["raised"] == 0


@backends
def test_each_download_has_its_type_and_the_word_document_opens(web_on: Any) -> None:
    docx = pytest.importorskip("docx")
    app, clock, rt = web_on
    raise_five(rt, clock)
    client = sign_in(app, "irom.cat")
    types = {"docx": DOCX, "csv": "text/csv", "html": "text/html", "json": "application/json"}
    for fmt, media in types.items():
        r = client.get(f"/reports/disputes?{PERIOD}&compare=last-year&format={fmt}")
        assert r.status_code == 200, (fmt, r.text[:300])
        assert r.headers["content-type"].startswith(media), fmt
        assert r.headers["content-disposition"] == (
            f'attachment; filename="drp-disputes-2027-02-01-2027-03-31.{fmt}"')
    word = client.get(f"/reports/disputes?{PERIOD}&format=docx").content
    document = docx.Document(io.BytesIO(word))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "Riverside Borough Council" in text and document.tables
    # The page links each download with the period and comparison shown.
    page = client.get(f"/reports/disputes?{PERIOD}&compare=both").text
    for fmt in types:
        assert (f'href="/reports/disputes?from=2027-02-01&amp;to=2027-03-31&amp;compare=both'
                f'&amp;format={fmt}"') in page, fmt
    # A head of service's Word document names their service.
    east = docx.Document(io.BytesIO(sign_in(app, "hos.ivy").get(
        f"/reports/disputes?{PERIOD}&format=docx").content))
    assert "East Service" in "\n".join(p.text for p in east.paragraphs)


def starts(columns: list[str], words: str) -> bool:
    return any(c.startswith(words) for c in columns)


def header_of(client: Any, compare: str) -> list[str]:
    text = client.get(f"/reports/disputes?{PERIOD}&compare={compare}&format=csv").text
    rows = list(csv.reader(io.StringIO(text)))
    return next(row for row in rows if row and row[0] == "Figure")


def test_the_comparison_chosen_changes_the_columns(web: Any) -> None:
    app, clock, rt = web
    raise_five(rt, clock)
    client = sign_in(app, "irom.cat")
    previous = header_of(client, "previous")
    assert starts(previous, "Previous period") and not starts(previous, "Same period")
    last_year = header_of(client, "last-year")
    assert starts(last_year, "Same period a year earlier") and not starts(last_year, "Previous")
    both = header_of(client, "both")
    assert starts(both, "Previous period") and starts(both, "Same period a year earlier")
    assert len(header_of(client, "none")) == 2  # the figure and this period
    assert "previous" not in report_json(client, "&compare=none")
    page = client.get(f"/reports/disputes?{PERIOD}&compare=last-year").text
    assert 'value="last-year" checked' in page
    assert "Same period a year earlier" in page and "Previous period, " not in page


def test_an_unknown_comparison_is_refused(web: Any) -> None:
    app, _clock, _rt = web
    r = sign_in(app, "irom.cat").get(f"/reports/disputes?{PERIOD}&compare=sideways")
    assert r.status_code == 422
    assert "Choose what to compare the period with" in r.text


def test_the_definitions_name_each_figure_as_the_tables_do(web: Any) -> None:
    """The page's Definitions list the figures by their titles (the tables' captions, rows
    and columns), never by their keys in the JSON (resolved_by_stage, themes_not_set)."""
    import re

    from drp.reporting.definitions import DEFINITIONS

    app, clock, rt = web
    raise_five(rt, clock)
    page = sign_in(app, "irom.cat").get(f"/reports/disputes?{PERIOD}").text
    listed = page.split('id="definitions"', 1)[1].split("</section>", 1)[0]
    keys = re.findall(r'<dt class="govuk-summary-list__key">\s*(.*?)\s*</dt>', listed, re.S)
    assert len(keys) == len(DEFINITIONS), keys
    assert "Each stage: resolved at it" in keys and "Concerns raised" in keys
    code = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")
    assert not code.search(listed), code.findall(listed)
    assert "Not set (concerns raised by theme)" in listed  # themes_not_set, in its words
