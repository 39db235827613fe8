"""The annual report's figures (issue 17) against counts written by hand: the crafted quarter of
test_reports.py through the service layer on both databases, and a held-out quarter written
through the command line. Every expected number below was counted on a calendar, not by the
report's formulas."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from drp import db
from drp.alerts.unit import known_id as known
from drp.ladder.protocol import Protocol
from drp.models import Child, Person, Team
from drp.reporting.figures import year_earlier

from .conftest import Run, backends
from .test_reports import figures, history

QUARTER = (date(2027, 4, 1), date(2027, 6, 30))


@backends
def test_the_quarters_annual_figures_match_the_hand_count(run: Run, org: Engine,
                                                           protocol: Protocol) -> None:
    """test_reports.history: a1 (raised in March, escalated 5 Apr, resolved at stage 1 8 Apr),
    a2 (resolved informally), a3 (raised at stage 1, held 13-20 Apr, escalated, withdrawn),
    a4 (bypassed to stage 3, referred to Cafcass), a7 (raised at stage 1, responded, resolved,
    reopened, resolved), a5, a6 and a8 open at the end; good practice apart."""
    history(run)
    r = figures(org, protocol, *QUARTER)
    assert r["formal"] == {
        "entered": 4,  # a1, a3, a4, a7
        "raised_at_formal_stage": 2,  # a3, a7
        "escalated_from_informal": 2,  # a1, a4
        "resolved": 2, "resolved_within_timescale_pct": 100.0,  # a1, a7
        "withdrawn": 1,  # a3, at stage 2
        "outstanding_at_end": 1, "overdue_at_end": 1,  # a4 at stage 3
        "timescale_working_days": 20}
    assert r["informal"] == {"raised": 5, "resolved": 1, "resolved_within_timescale_pct": 100.0,
                             "withdrawn": 0, "outstanding_at_end": 3, "overdue_at_end": 1}
    assert r["resolved_at_stage_pct"] == {"informal": 33.3, "stage1": 66.7}
    assert r["children"] == 3 and r["repeat_children"] == 1  # R100 five times; R101, R200
    assert r["by_month"] == [
        {"month": "2027-04", "raised": 2, "entered_formal": 2, "resolved": 2, "withdrawn": 1},
        {"month": "2027-05", "raised": 2, "entered_formal": 2, "resolved": 1, "withdrawn": 0},
        {"month": "2027-06", "raised": 3, "entered_formal": 0, "resolved": 0, "withdrawn": 0}]
    # a1 16 working days (Good Friday and Easter Monday out), a2 1, a7 6.
    assert r["working_days_to_resolve"] == {
        "count": 3, "median": 6, "p90": 14.0,
        "by_stage_reached": {"informal": {"count": 1, "median": 1, "p90": 1},
                             "stage1": {"count": 2, "median": 11, "p90": 15.0}}}
    # a7 answered at stage 1 within the hour it was raised; a6 informally the next day.
    assert r["response_times"] == {
        "informal": {"count": 1, "median": 1, "p90": 1, "within_timescale_pct": 100.0,
                     "timescale_working_days": 5},
        "stage1": {"count": 1, "median": 0, "p90": 0, "within_timescale_pct": 100.0,
                   "timescale_working_days": 5}}
    # a3 held Tue 13 to Tue 20 April: 14, 15, 16, 19 and 20 April.
    assert r["holds"] == {"count": 1, "alerts": 1, "working_days": 5, "median_working_days": 5,
                          "on_hold_at_end": 0}
    assert r["team_themes"] == [
        {"team": "east-a", "name": "East A", "service": "east",
         "themes": {"safeguarding": 1, "funding": 1}, "not_set": 4},
        {"team": "west-a", "name": "West A", "service": "west",
         "themes": {"safeguarding": 1}, "not_set": 0}]
    assert r["outcomes"] == {"resolved": 3, "withdrawn": 1, "reopened": 1, "open_at_end": 4}
    assert r["raised_monthly_average"] == 2.3  # 7 over 2.99 months
    assert r["previous_year"]["period"] == {"from": "2026-04-01", "to": "2026-06-30"}
    assert r["previous_year"]["raised"] == 0 and r["change_year"]["raised"] == 7
    assert r["change"]["formal"]["entered"] == 4


def _without_names(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in ("name", "service_name")} for row in rows]


@backends
def test_a_later_transfer_or_rename_does_not_change_the_period(run: Run, org: Engine,
                                                               protocol: Protocol) -> None:
    history(run)
    before = figures(org, protocol, *QUARTER)
    # After the quarter: R200 moves to east-a and to Ada; west-a is renamed.
    with db.transaction(org) as s:
        ada = s.exec(select(Person).where(Person.username == "iro.ada")).one()
        east = s.exec(select(Team).where(Team.key == "east-a")).one()
        west = s.exec(select(Team).where(Team.key == "west-a")).one()
        child = s.exec(select(Child).where(Child.ref == "R200")).one()
        child.team_id, child.iro_id = known(east.id), known(ada.id)
        west.name = "West Alpha"
        s.add(child)
        s.add(west)
    after = figures(org, protocol, *QUARTER)
    for key in ("by_team", "by_service", "by_iro", "team_themes"):
        assert _without_names(after[key]) == _without_names(before[key]), key
    for key in ("raised", "reached", "formal", "informal", "holds", "cafcass", "children",
                "good_practice_by_team", "working_days_to_resolve", "response_times"):
        assert after[key] == before[key], key
    # The figures stay with the team; it shows under the name it has now.
    west_row = next(t for t in after["by_team"] if t["team"] == "west-a")
    assert (west_row["name"], west_row["raised"]) == ("West Alpha", 1)


@pytest.mark.parametrize(("start", "end", "expected"), [
    (date(2027, 4, 1), date(2027, 6, 30), (date(2026, 4, 1), date(2026, 6, 30))),
    (date(2024, 2, 1), date(2024, 2, 29), (date(2023, 2, 1), date(2023, 2, 28))),
    (date(2025, 2, 1), date(2025, 2, 28), (date(2024, 2, 1), date(2024, 2, 29))),
    (date(2024, 2, 29), date(2024, 3, 10), (date(2023, 2, 28), date(2023, 3, 10))),
    (date(2020, 7, 1), date(2021, 3, 31), (date(2019, 7, 1), date(2020, 3, 31))),
])
def test_the_same_dates_a_year_earlier(start: date, end: date,
                                       expected: tuple[date, date]) -> None:
    assert year_earlier(start, end) == expected


# -- the held-out quarter, through the command line ----------------------------------------------

def held_out_quarter(cli: Any) -> None:
    """October to December 2027 (bank holidays only at Christmas, after every date below)."""
    def raised(when: str, iro: str, child: str, *extra: str) -> int:
        out = cli("alert", "raise", "--as", iro, "--child", child, "--summary", "a concern",
                  "--separate", "--json", "--now", when, *extra).stdout
        return int(json.loads(out)["id"])

    def act(*args: str) -> None:
        cli("alert", *args)

    # p1: raised Wed 15 Sep (before), informal due Wed 22 Sep; resolved Fri 1 Oct: late;
    # 12 working days (16-17, 20-24, 27 Sep-1 Oct).
    p1 = raised("2027-09-15T10:00", "iro.ada", "R100")
    act("resolve", str(p1), "--as", "iro.ada", "--outcome", "done", "--now", "2027-10-01T10:00")
    # q1: informal Mon 4 Oct, resolved Wed 6 Oct: 2 working days, on time.
    q1 = raised("2027-10-04T10:00", "iro.ada", "R100", "--theme", "safeguarding")
    act("resolve", str(q1), "--as", "iro.ada", "--outcome", "done", "--now", "2027-10-06T10:00")
    # q2: raised at stage 1 Tue 5 Oct (formal clock to Tue 2 Nov); answered Thu 7 Oct (2
    # working days); escalated Mon 11 Oct; answered Wed 13 Oct (2); resolved Thu 14 Oct: 7
    # working days, on time.
    q2 = raised("2027-10-05T10:00", "iro.ada", "R100", "--theme", "funding", "--stage", "stage1")
    act("respond", str(q2), "--as", "tm.fay", "--message", "plan", "--now", "2027-10-07T10:00")
    act("escalate", str(q2), "--as", "iro.ada", "--reason", "no", "--now", "2027-10-11T10:00")
    act("respond", str(q2), "--as", "hos.ivy", "--message", "ok", "--now", "2027-10-13T10:00")
    act("resolve", str(q2), "--as", "iro.ada", "--outcome", "ok", "--now", "2027-10-14T10:00")
    # q3 (west-a, Ben): informal Mon 11 Oct; escalated Mon 18 Oct (clock to Mon 15 Nov); held
    # Tue 19 to Tue 26 Oct (5 working days: clock to Mon 22 Nov); resolved Mon 15 Nov: 25
    # working days less 5 held, 20; on time.
    q3 = raised("2027-10-11T10:00", "iro.ben", "R200", "--theme", "safeguarding")
    act("escalate", str(q3), "--as", "iro.ben", "--reason", "no", "--now", "2027-10-18T10:00")
    act("hold", str(q3), "--as", "iro.ben", "--reason", "court", "--until", "2027-10-26",
        "--now", "2027-10-19T10:00")
    act("resume", str(q3), "--as", "iro.ben", "--now", "2027-10-26T10:00")
    act("resolve", str(q3), "--as", "iro.ben", "--outcome", "ok", "--now", "2027-11-15T10:00")
    cli("alert", "raise", "--as", "iro.ben", "--child", "R200", "--summary", "good work",
        "--kind", "good-practice", "--now", "2027-10-20T10:00")
    # q4 (R101, east-a, Ben): informal Mon 1 Nov, no theme; escalated Mon 15 Nov (stage 1 due
    # Mon 22 Nov, clock to Mon 13 Dec), never answered: overdue at the end; referred to
    # Cafcass Mon 22 Nov, declined Wed 1 Dec.
    q4 = raised("2027-11-01T10:00", "iro.ben", "R101")
    act("escalate", str(q4), "--as", "iro.ben", "--reason", "no", "--now", "2027-11-15T10:00")
    act("refer", str(q4), "--as", "iro.ben", "--reason", "after advice", "--legal-advice",
        "Legal services", "--now", "2027-11-22T10:00")
    act("cafcass", str(q4), "--as", "iro.ben", "--response", "declined",
        "--now", "2027-12-01T10:00")
    # q5: informal Mon 8 Nov, withdrawn the next day.
    q5 = raised("2027-11-08T10:00", "iro.ada", "R100", "--theme", "safeguarding")
    act("withdraw", str(q5), "--as", "iro.ada", "--reason", "duplicate",
        "--now", "2027-11-09T10:00")
    # q6 (west-a): informal Mon 6 Dec, due Mon 13 Dec, unanswered: overdue at the end.
    raised("2027-12-06T10:00", "iro.ben", "R200", "--theme", "funding")
    # q7: informal Mon 13 Dec, answered Tue 14 Dec (1 working day): open, not overdue.
    q7 = raised("2027-12-13T10:00", "iro.ada", "R100", "--theme", "leaving_care")
    act("respond", str(q7), "--as", "tm.fay", "--message", "on it", "--now", "2027-12-14T10:00")


HELD_OUT: dict[str, Any] = {
    "raised": 7, "children": 3, "repeat_children": 2, "good_practice": 1,
    "good_practice_by_team": {"west-a": 1},
    "reached": {"informal": 6, "stage1": 3, "stage2": 1, "stage3": 0, "stage4": 0,
                "cafcass": 1},
    "closed": {"resolved": 4, "withdrawn": 1},
    "resolved_by_stage": {"informal": 2, "stage1": 1, "stage2": 1},
    "resolved_at_stage_pct": {"informal": 50.0, "stage1": 25.0, "stage2": 25.0},
    "resolved_within_timescale_pct": 75.0,
    "formal": {"entered": 3, "raised_at_formal_stage": 1, "escalated_from_informal": 2,
               "resolved": 2, "resolved_within_timescale_pct": 100.0, "withdrawn": 0,
               "outstanding_at_end": 1, "overdue_at_end": 1, "timescale_working_days": 20},
    "informal": {"raised": 6, "resolved": 2, "resolved_within_timescale_pct": 50.0,
                 "withdrawn": 1, "outstanding_at_end": 2, "overdue_at_end": 1},
    "outstanding_at_end": 3, "overdue_at_end": 2,
    "working_days_to_resolve": {
        "count": 4, "median": 9.5, "p90": 17.6,  # 2, 7, 12, 20: 12 + 0.7 * 8
        "by_stage_reached": {"informal": {"count": 2, "median": 7, "p90": 11.0},
                             "stage1": {"count": 1, "median": 20, "p90": 20},
                             "stage2": {"count": 1, "median": 7, "p90": 7}}},
    "response_times": {
        "informal": {"count": 1, "median": 1, "p90": 1, "within_timescale_pct": 100.0,
                     "timescale_working_days": 5},
        "stage1": {"count": 1, "median": 2, "p90": 2, "within_timescale_pct": 100.0,
                   "timescale_working_days": 5},
        "stage2": {"count": 1, "median": 2, "p90": 2, "within_timescale_pct": 100.0,
                   "timescale_working_days": 5}},
    "holds": {"count": 1, "alerts": 1, "working_days": 5, "median_working_days": 5,
              "on_hold_at_end": 0},
    "cafcass": {"referred": 1, "responses": {"declined": 1}},
    "referred_from_stage": {"stage1": 1},
    "themes": {"safeguarding": 3, "funding": 2, "leaving_care": 1}, "themes_not_set": 1,
    "by_team": [
        {"team": "east-a", "name": "East A", "service": "east", "service_name": "East Service",
         "raised": 5, "entered_formal": 2, "resolved": 3, "outstanding_at_end": 2},
        {"team": "west-a", "name": "West A", "service": "west", "service_name": "West Service",
         "raised": 2, "entered_formal": 1, "resolved": 1, "outstanding_at_end": 1}],
    "by_iro": [
        {"iro": "iro.ada", "name": "Ada Iro", "raised": 4, "entered_formal": 1, "resolved": 3,
         "outstanding_at_end": 1},
        {"iro": "iro.ben", "name": "Ben Iro", "raised": 3, "entered_formal": 2, "resolved": 1,
         "outstanding_at_end": 2}],
    "by_month": [
        {"month": "2027-10", "raised": 3, "entered_formal": 2, "resolved": 3, "withdrawn": 0},
        {"month": "2027-11", "raised": 2, "entered_formal": 1, "resolved": 1, "withdrawn": 1},
        {"month": "2027-12", "raised": 2, "entered_formal": 0, "resolved": 0, "withdrawn": 0}],
    "team_themes": [
        {"team": "east-a", "name": "East A", "service": "east",
         "themes": {"safeguarding": 2, "funding": 1, "leaving_care": 1}, "not_set": 1},
        {"team": "west-a", "name": "West A", "service": "west",
         "themes": {"safeguarding": 1, "funding": 1}, "not_set": 0}],
    "outcomes": {"resolved": 4, "withdrawn": 1, "reopened": 0, "open_at_end": 3},
}


def test_a_held_out_quarter_written_through_the_command_line(cli: Any, tmp_path: Path) -> None:
    held_out_quarter(cli)
    r = json.loads(cli("report", "disputes", "--from", "2027-10-01", "--to", "2027-12-31",
                       "--compare", "both").stdout)
    for key, expected in HELD_OUT.items():
        assert r[key] == expected, key
    assert r["previous"]["period"] == {"from": "2027-07-01", "to": "2027-09-30"}
    assert r["previous"]["raised"] == 1  # p1
    assert r["previous_year"]["period"] == {"from": "2026-10-01", "to": "2026-12-31"}
    assert r["compare"] == "both"
    none = json.loads(cli("report", "disputes", "--from", "2027-10-01", "--to", "2027-12-31",
                          "--compare", "none").stdout)
    assert not {"previous", "previous_year", "change", "change_year"} & set(none)
    assert none["raised"] == 7
    # The pages a council pastes: names and titles, never keys.
    md = cli("report", "disputes", "--from", "2027-10-01", "--to", "2027-12-31",
             "--format", "md", "--compare", "last-year").stdout
    for shown in ("Stage 1: Team manager", "Stage 2: Head of service", "East A", "West Service",
                  "Ada Iro", "Ben Iro", "October 2027", "Declined the referral",
                  "7 concerns were raised between 1 October 2027 and 31 December 2027",
                  "3 alerts went to a formal stage", "Same period a year earlier"):
        assert shown in md, shown
    body = md.split("## Definitions")[0]
    for key in ("stage1", "east-a", "west-a", "iro.ada", "iro.ben", "Reached stage",
                "leaving_care"):
        assert key not in body, key
    assert "Previous period" not in md  # last-year alone
    # CSV: every table, in one file or one file each.
    one = cli("report", "disputes", "--from", "2027-10-01", "--to", "2027-12-31",
              "--format", "csv").stdout
    folder = tmp_path / "tables"
    cli("report", "disputes", "--from", "2027-10-01", "--to", "2027-12-31", "--format", "csv",
        "--out", f"{folder}/")
    files = sorted(p.name for p in folder.iterdir())
    assert files[0] == "01-headline.csv" and "04-stages.csv" in files and len(files) >= 14
    teams = next(p for p in folder.iterdir() if p.name.endswith("-teams.csv")).read_text()
    assert teams.splitlines() == [
        "Team,Service,Raised,Went formal,Resolved,Outstanding at end",
        "East A,East Service,5,2,3,2", "West A,West Service,2,1,1,1"]
    assert one.count("\r\n\r\n") == len(files) - 1  # a blank row between tables


def test_the_word_document_reads_back_and_converts_to_pdf(cli: Any, tmp_path: Path) -> None:
    import shutil
    import subprocess

    docx = pytest.importorskip("docx")
    held_out_quarter(cli)
    out = tmp_path / "report.docx"
    cli("report", "disputes", "--from", "2027-10-01", "--to", "2027-12-31", "--format", "docx",
        "--out", str(out), "--compare", "both")
    document = docx.Document(str(out))
    text = "\n".join(p.text for p in document.paragraphs)
    assert "7 concerns were raised between 1 October 2027 and 31 December 2027" in text
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    assert {"Headline", "Formal and informal", "By stage", "By team and service", "By IRO",
            "By month", "Time to resolve", "Holds", "Cafcass", "Good practice",
            "Themes"} <= set(headings)
    cells = [[c.text for c in row.cells] for t in document.tables for row in t.rows]
    assert ["East A", "East Service", "5", "2", "3", "2"] in cells
    assert ["Ada Iro", "4", "1", "3", "1"] in cells
    assert len(document.inline_shapes) >= 3  # the charts, as images
    assert "--format docx writes a Word document" in cli.refused(
        "report", "disputes", "--from", "2027-10-01", "--to", "2027-12-31", "--format", "docx")
    soffice = shutil.which("soffice")
    if soffice is None:
        pytest.skip("LibreOffice (soffice) is not installed: .ci/run should install it to"
                    " check the .docx converts to PDF")
    profile = tmp_path / "lo-profile"
    subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(tmp_path), str(out)],
                   check=True, capture_output=True, timeout=180)
    pdf = (tmp_path / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
