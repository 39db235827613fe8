"""The dispute report (the published figures, on a page or as a download), and the figures
at a glance: the start page of those who oversee the service."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from ...clock import parse_date
from ...errors import BadValue
from ...ladder import access
from ...models import Alert, Child, Person, Service, Team
from ...reporting import charts
from ...reporting import render as report_render
from ...reporting.figures import (
    COMPARE,
    report,
)
from ...reporting.sections import layout, number, span
from ...runtime import Runtime
from .. import report_words
from ..deps import ClockDep, CurrentUser, Page, ReportReader, RuntimeDep, Work, council_name

router = APIRouter(include_in_schema=False)

# The report carries its own stylesheet, so it stays one file when downloaded.
REPORT_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline';"
              " frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
WHOLE_COUNCIL = "the whole council"
# The comparison choices, as the page words them (the command line's --compare values).
COMPARE_WORDS = {"previous": "The previous period", "last-year": "The same period a year earlier",
                 "both": "Both", "none": "No comparison"}
assert tuple(COMPARE_WORDS) == COMPARE


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _date_asked(q: Mapping[str, str], name: str, words: str) -> date | None:
    """The date in the fields name-day, name-month and name-year (the page's date inputs),
    or in `name` as YYYY-MM-DD (a link, a script); None when none is given."""
    parts = [q.get(f"{name}-{p}", "").strip() for p in ("day", "month", "year")]
    if any(parts):
        try:
            return date(int(parts[2]), int(parts[1]), int(parts[0]))
        except ValueError:
            raise BadValue(f"The {words} date must be a real date", field=name) from None
    return parse_date(q[name], name) if q.get(name) else None


def _scope(session: Session, username: str, today: date) -> tuple[set[int] | None, str]:
    """The alerts this reader's figures count, by the lists' own rule
    (access.visible_alerts), and whose they are in words: None and "the whole council" for
    those who see all (the IRO manager, assistant director, director); otherwise the ids
    and the names of their services (a head of service's, a service manager's)."""
    person = session.exec(select(Person).where(Person.username == username)).one()
    actor = access.load_actor(session, person, today)
    if actor.sees_all:
        return None, WHOLE_COUNCIL
    ids = {int(i) for i in session.exec(
        select(Alert.id).join(Child, col(Child.id) == Alert.child_id)
        .where(access.visible_alerts(actor))) if i is not None}
    services = list(session.exec(
        select(Service.name).join(Team, col(Team.service_id) == Service.id)
        .where(col(Team.id).in_(sorted(actor.team_ids))).distinct()
        .order_by(col(Service.name))))
    if not services:
        return ids, "the alerts you may see"
    return ids, services[0] if len(services) == 1 else (
        ", ".join(services[:-1]) + " and " + services[-1])


def _figures(session: Session, rt: Runtime, start: date, end: date, compare: str,
             alert_ids: set[int] | None) -> dict[str, Any]:
    """drp.reporting.figures.report, over only `alert_ids` when given (None: every alert)."""
    return report(session, rt.protocol, rt.calendar, rt.taxonomy, rt.settings.tz, start, end,
                  compare=compare, alert_ids=alert_ids)


@router.get("/reports/disputes")
def dispute_report(request: Request, rt: RuntimeDep, clock: ClockDep, user: ReportReader,
                   page: Page) -> Response:
    """The report for a period, compared as asked (`compare`: previous, last-year, both or
    none, as `drp report disputes --compare`), over the alerts this person may see: the
    page, or (`format`) docx, csv, html (prints on A4), md or json."""
    today = clock.now().astimezone(rt.settings.tz).date()
    q = request.query_params
    first = date(today.year if today.month >= 4 else today.year - 1, 4, 1)
    start = _date_asked(q, "from", "start") or first
    end = _date_asked(q, "to", "end") or today
    compare = q.get("compare", "previous")
    if compare not in COMPARE:
        raise BadValue("Choose what to compare the period with", field="compare")
    fmt = q.get("format", "page")
    with Session(rt.engine) as session:
        alert_ids, whose = _scope(session, user.username, today)
        r = _figures(session, rt, start, end, compare, alert_ids)
    r["counts"] = whose
    council = council_name(rt.engine)
    heading = council if alert_ids is None else f"{council}: {whose}"
    name = f"drp-disputes-{start.isoformat()}-{end.isoformat()}"
    if fmt == "json":
        return Response(report_render.to_json(r), media_type="application/json",
                        headers=_attachment(f"{name}.json"))
    if fmt == "csv":
        return Response(report_render.to_csv(r), media_type="text/csv; charset=utf-8",
                        headers=_attachment(f"{name}.csv"))
    if fmt == "md":
        return Response(report_render.to_md(r), media_type="text/markdown; charset=utf-8",
                        headers=_attachment(f"{name}.md"))
    if fmt == "docx":
        from ...reporting.word import to_docx

        return Response(to_docx(r, heading), media_type=DOCX,
                        headers=_attachment(f"{name}.docx"))
    response: Response
    if fmt == "html":
        html = report_render.to_html(r, heading)
        response = Response(html, media_type="text/html; charset=utf-8",
                            headers=_attachment(f"{name}.html"))
    else:
        # The same sections as the download, in GOV.UK Frontend's classes (report.html).
        sections = [(section, charts.svg(r, section.charts)) for section in layout(r)]
        query = f"from={start.isoformat()}&to={end.isoformat()}&compare={compare}"
        response = page("report.html", user, title="Dispute report", report=r,
                        sections=sections, period=span(r["period"]), number=number,
                        period_start=start, period_end=end,  # (base.html sets `end`)
                        compare=compare, compare_words=COMPARE_WORDS, whose=whose,
                        query=query, definitions=report_words.definitions(r))
    response.headers["Content-Security-Policy"] = REPORT_CSP
    return response


@router.get("/figures", response_class=HTMLResponse)
def figures_at_a_glance(user: CurrentUser, work: Work, page: Page) -> Response:
    """Open alerts by stage, overdue, due this week, on hold, working days open, raised this
    month and last, over the alerts this person may see; each a link to the list of exactly
    those alerts (/alerts with the same filters)."""
    with work() as svc:
        glance = svc.glance(user.username)
    return page("home.html", user, title="Figures at a glance", glance=glance)
