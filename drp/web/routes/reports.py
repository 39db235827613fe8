"""The dispute report (the published figures, on a page or as a download), and the figures
at a glance: the start page of those who oversee the service."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from ...clock import parse_date
from ...errors import BadValue
from ...reporting import charts
from ...reporting import render as report_render
from ...reporting.figures import report
from ...reporting.sections import layout, number, span
from ..deps import ClockDep, CurrentUser, Page, ReportReader, RuntimeDep, Work, council_name

router = APIRouter(include_in_schema=False)

# The report carries its own stylesheet, so it stays one file when downloaded.
REPORT_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline';"
              " frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


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


@router.get("/reports/disputes")
def dispute_report(request: Request, rt: RuntimeDep, clock: ClockDep, user: ReportReader,
                   page: Page) -> Response:
    today = clock.now().astimezone(rt.settings.tz).date()
    q = request.query_params
    first = date(today.year if today.month >= 4 else today.year - 1, 4, 1)
    start = _date_asked(q, "from", "start") or first
    end = _date_asked(q, "to", "end") or today
    fmt = q.get("format", "page")
    with Session(rt.engine) as session:
        r = report(session, rt.protocol, rt.calendar, rt.taxonomy, rt.settings.tz, start, end)
    name = f"drp-disputes-{start.isoformat()}-{end.isoformat()}"
    if fmt == "json":
        return Response(report_render.to_json(r), media_type="application/json")
    if fmt == "csv":
        return Response(report_render.to_csv(r), media_type="text/csv; charset=utf-8",
                        headers=_attachment(f"{name}.csv"))
    if fmt == "md":
        return Response(report_render.to_md(r), media_type="text/markdown; charset=utf-8",
                        headers=_attachment(f"{name}.md"))
    response: Response
    if fmt == "html":
        html = report_render.to_html(r, council_name(rt.engine))
        response = Response(html, media_type="text/html; charset=utf-8",
                            headers=_attachment(f"{name}.html"))
    else:
        # The same sections as the download, in GOV.UK Frontend's classes (report.html).
        sections = [(section, charts.svg(r, section.charts)) for section in layout(r)]
        response = page("report.html", user, title="Dispute report", report=r,
                        sections=sections, period=span(r["period"]), number=number,
                        period_start=start, period_end=end,  # (base.html sets `end`)
                        query=f"from={start.isoformat()}&to={end.isoformat()}")
    response.headers["Content-Security-Policy"] = REPORT_CSP
    return response


@router.get("/figures", response_class=HTMLResponse)
def figures(user: CurrentUser, work: Work, page: Page) -> Response:
    """Open alerts by stage, overdue, due this week, on hold, working days open, raised this
    month and last, over the alerts this person may see; each a link to the list of exactly
    those alerts (/alerts with the same filters)."""
    with work() as svc:
        glance = svc.glance(user.username)
    return page("home.html", user, title="Figures at a glance", glance=glance)
