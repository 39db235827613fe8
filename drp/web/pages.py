"""The pages: each a thin shell over the service layer, decided by the same access policy."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..alerts import ActionIn
from ..clock import parse_date
from ..errors import BadValue, DrpError

CSV_COLUMNS = ["id", "child", "team", "status", "stage", "responsible", "theme", "raised_at",
               "stage_due", "resolution_due", "overdue", "summary"]
ACTION_LABELS = {
    "respond": "Respond", "escalate": "Escalate", "resolve": "Resolve",
    "withdraw": "Withdraw", "hold": "Put on hold", "resume": "Resume",
    "extend": "Agree an extension", "refer": "Refer to Cafcass", "reopen": "Reopen",
    "set_theme": "Confirm or change the theme",
}


def register(app: FastAPI) -> None:
    st = app.state
    rt = st.rt

    def filters(request: Request) -> dict[str, str | None]:
        q = request.query_params
        return {k: (q.get(k) or None) for k in ("status", "team", "stage", "theme", "service")}

    def list_page(request: Request, title: str, intro: str, *, mine: bool = False,
                  inbox: bool = False, default_status: str | None = None,
                  export: bool = False) -> Response:
        user = st.need(request)
        f = filters(request)
        status = f["status"] or default_status
        with st.service() as svc:
            if inbox:
                views = svc.inbox(user.person.username)
            else:
                views = svc.list_alerts(user.person.username, status, team=f["team"],
                                        stage=f["stage"], theme=f["theme"],
                                        service=f["service"], mine=mine)
        views.sort(key=lambda v: (v.status != "open", not v.overdue,
                                  v.stage_due or v.resolution_due, v.id))
        return st.page(request, "alerts.html", user, title=title, intro=intro, views=views,
                       filters=f, status_filter=status, show_filters=not inbox, export=export,
                       path=request.url.path, stages=rt.protocol.keys,
                       themes=rt.taxonomy.themes)

    @app.get("/my-alerts", response_class=HTMLResponse, include_in_schema=False)
    def my_alerts(request: Request) -> Response:
        return list_page(request, "My alerts", "Alerts you raised or hold as the child's IRO:"
                         " open first, overdue highlighted.", mine=True)

    @app.get("/inbox", response_class=HTMLResponse, include_in_schema=False)
    def inbox(request: Request) -> Response:
        return list_page(request, "Alerts awaiting your response",
                         "Alerts at a stage where you are asked to respond, oldest due first.",
                         inbox=True)

    @app.get("/outstanding", response_class=HTMLResponse, include_in_schema=False)
    def outstanding(request: Request) -> Response:
        return list_page(request, "Outstanding alerts", "The open alerts of the services you"
                         " can see, overdue first: the on-screen twin of the fortnightly"
                         " digest.", default_status="open", export=True)

    @app.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    def all_alerts(request: Request) -> Response:
        return list_page(request, "Alerts", "Every alert you can see.", export=True)

    @app.get("/alerts.csv", include_in_schema=False)
    def alerts_csv(request: Request) -> Response:
        from .app import csv_response

        user = st.need(request)
        f = filters(request)
        with st.service() as svc:
            views = svc.list_alerts(user.person.username, f["status"], team=f["team"],
                                    stage=f["stage"], theme=f["theme"], service=f["service"])
        rows = [{"id": v.id, "child": v.child, "team": v.team, "status": v.status,
                 "stage": v.stage, "responsible": v.responsible, "theme": v.theme,
                 "raised_at": v.raised_at.isoformat(), "stage_due": v.stage_due,
                 "resolution_due": v.resolution_due, "overdue": v.overdue,
                 "summary": v.summary} for v in views]
        return csv_response(rows, "drp-alerts.csv", CSV_COLUMNS)

    # -- raising ----------------------------------------------------------------------------------
    def raise_form(request: Request, user: Any, status: int = 200, **context: Any) -> Response:
        with st.service() as svc:
            children = svc.children_for(user.person.username)
        return st.page(request, "raise.html", user, status=status, children=children,
                       themes=rt.taxonomy.themes, stages=[s for s in rt.protocol.stages],
                       form=context.pop("form", {}), **context)

    @app.get("/alerts/new", response_class=HTMLResponse, include_in_schema=False)
    def new_alert(request: Request) -> Response:
        user = st.need(request)
        return raise_form(request, user)

    @app.post("/alerts/new", response_class=HTMLResponse, include_in_schema=False)
    async def create_alert(request: Request) -> Response:
        user = st.need(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        st.check_csrf(request, user, form)
        text = " ".join(form.get(k, "") for k in ("summary", "detail", "impact"))
        if form.get("do") == "suggest":
            found = rt.suggest([text]) if text.strip() else []
            return raise_form(request, user, form=form, suggestion=found[0] if found else None)
        try:
            with st.service() as svc:
                alert = svc.raise_alert(
                    user.person.username, form.get("child", ""), form.get("summary", ""),
                    detail=form.get("detail"), impact=form.get("impact"),
                    outcome_wanted=form.get("outcome_wanted"), theme=form.get("theme") or None,
                    stage=form.get("stage") or None)
                aid = alert.id
        except DrpError as exc:
            return raise_form(request, user, status=exc.http_status, form=form,
                              error=exc.message, error_field=_field_of(exc.message))
        return RedirectResponse(f"/alerts/{aid}?done=raised", 303)

    # -- one alert --------------------------------------------------------------------------------
    def alert_page(request: Request, alert_id: int, user: Any, status: int = 200,
                   **context: Any) -> Response:
        with st.service() as svc:
            view = svc.show(alert_id, user.person.username)
            allowed = svc.allowed(alert_id, user.person.username)
            people = [p for p in svc.people_on_line(alert_id, user.person.username)
                      if p[0] != user.person.username]  # "Me" is offered already
        return st.page(request, "alert.html", user, status=status, view=view,
                       allowed=allowed, labels=ACTION_LABELS, people=people,
                       stages=rt.protocol.keys, themes=rt.taxonomy.themes,
                       done=request.query_params.get("done"), form=context.pop("form", {}),
                       **context)

    @app.get("/alerts/{alert_id}", response_class=HTMLResponse, include_in_schema=False)
    def show_alert(request: Request, alert_id: int) -> Response:
        user = st.need(request)
        return alert_page(request, alert_id, user)

    @app.get("/alerts/{alert_id}/refer", response_class=HTMLResponse, include_in_schema=False)
    def refer_pause(request: Request, alert_id: int) -> Response:
        user = st.need(request)
        with st.service() as svc:
            view = svc.show(alert_id, user.person.username)
            svc.check(alert_id, user.person.username, "refer")  # 403 or 409 with the reason
        return st.page(request, "refer.html", user, view=view, form={})

    @app.post("/alerts/{alert_id}/{action}", response_class=HTMLResponse,
              include_in_schema=False)
    async def act(request: Request, alert_id: int, action: str) -> Response:
        user = st.need(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        st.check_csrf(request, user, form)
        who = user.person.username
        try:
            with st.service() as svc:
                if action == "respond":
                    svc.respond(alert_id, who, form.get("message", ""), _actions(form))
                elif action == "escalate":
                    svc.escalate(alert_id, who, form.get("reason", ""),
                                 to=form.get("to") or None)
                elif action == "resolve":
                    svc.resolve(alert_id, who, form.get("outcome", ""))
                elif action == "withdraw":
                    svc.withdraw(alert_id, who, form.get("reason", ""))
                elif action == "hold":
                    until = parse_date(form["until"], "the end date") if form.get("until") \
                        else None
                    svc.hold(alert_id, who, form.get("reason", ""), until)
                elif action == "resume":
                    svc.resume(alert_id, who)
                elif action == "extend":
                    svc.extend(alert_id, who, parse_date(form.get("until", ""), "the new due"
                                                                                " date"),
                               form.get("reason", ""))
                elif action == "refer":
                    if form.get("confirm") != "yes":
                        raise BadValue("confirm that you have consulted the IRO manager and"
                                       " taken independent legal advice")
                    svc.refer(alert_id, who, form.get("reason", ""))
                elif action == "reopen":
                    svc.reopen(alert_id, who, form.get("reason", ""))
                elif action == "theme":
                    svc.set_theme(alert_id, who, form.get("theme", ""))
                else:
                    raise BadValue(f"there is no action {action!r}")
        except DrpError as exc:
            if exc.http_status == 404:
                raise
            if action == "refer" and exc.http_status in (400, 422):
                with st.service() as svc:
                    view = svc.show(alert_id, who)
                return st.page(request, "refer.html", user, status=exc.http_status, view=view,
                               error=exc.message, form=form)
            return alert_page(request, alert_id, user, status=exc.http_status,
                              error=exc.message, error_action=action, form=form)
        return RedirectResponse(f"/alerts/{alert_id}?done={action}", 303)

    @app.post("/alerts/{alert_id}/actions/{no}/done", include_in_schema=False)
    async def action_done(request: Request, alert_id: int, no: int) -> Response:
        user = st.need(request)
        st.check_csrf(request, user, dict(await request.form()))
        try:
            with st.service() as svc:
                svc.action_done(alert_id, no, user.person.username)
        except DrpError as exc:
            if exc.http_status == 404:
                raise
            return alert_page(request, alert_id, user, status=exc.http_status,
                              error=exc.message)
        return RedirectResponse(f"/alerts/{alert_id}?done=action", 303)

    # -- reports ----------------------------------------------------------------------------------
    @app.get("/reports/disputes", include_in_schema=False)
    def dispute_report(request: Request) -> Response:
        from datetime import date

        from sqlmodel import Session

        from .. import report_render
        from ..reports import report

        user = st.need(request)
        if not user.roles & {"iro_manager", "assistant_director", "director",
                             "head_of_service"}:
            raise st.Forbidden("the dispute report is for IRO managers and senior managers")
        today = st.clock.now().astimezone(rt.settings.tz).date()
        q = request.query_params
        first = date(today.year if today.month >= 4 else today.year - 1, 4, 1)
        start = parse_date(q["from"], "from") if q.get("from") else first
        end = parse_date(q["to"], "to") if q.get("to") else today
        fmt = q.get("format", "page")
        with Session(rt.engine) as session:
            r = report(session, rt.protocol, rt.calendar, rt.taxonomy, rt.settings.tz,
                       start, end)
        name = f"drp-disputes-{start.isoformat()}-{end.isoformat()}"
        if fmt == "json":
            return Response(report_render.to_json(r), media_type="application/json")
        if fmt == "csv":
            return Response(report_render.to_csv(r), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
        if fmt == "md":
            return Response(report_render.to_md(r), media_type="text/markdown; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}.md"'})
        council = st.templates.env.globals.get("council_name", lambda: "drp")()
        html = report_render.to_html(r, council)
        if fmt == "html":
            response = Response(html, media_type="text/html; charset=utf-8", headers={
                "Content-Disposition": f'attachment; filename="{name}.html"'})
        else:
            body = html.split("<body>", 1)[1].rsplit("</body>", 1)[0]
            response = st.page(request, "report.html", user, title="Dispute report",
                               body=body, start=start, end=end,
                               query=f"from={start.isoformat()}&to={end.isoformat()}")
        # The report carries its own stylesheet, so it stays one file when downloaded.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline';"
            " frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        return response

    # -- administration ---------------------------------------------------------------------------
    @app.get("/admin", response_class=HTMLResponse, include_in_schema=False)
    def admin(request: Request) -> Response:
        user = st.need(request)
        _admin_only(user)
        return st.page(request, "admin.html", user, protocol=rt.protocol,
                       protocol_file=str(rt.settings.protocol))

    @app.get("/admin/protocol.svg", include_in_schema=False)
    def protocol_svg(request: Request) -> Response:
        import tempfile
        from pathlib import Path

        from ..machine import diagram

        user = st.need(request)
        _admin_only(user)
        with tempfile.TemporaryDirectory() as tmp:
            out = diagram(rt.protocol, Path(tmp) / "ladder.svg")
            return Response(out.read_bytes(), media_type="image/svg+xml")

    @app.post("/admin/org", response_class=HTMLResponse, include_in_schema=False)
    async def load_organisation(request: Request) -> Response:
        import tempfile
        from pathlib import Path

        from .. import db
        from ..org import load_org

        user = st.need(request)
        _admin_only(user)
        form = await request.form()
        st.check_csrf(request, user, dict(form))
        upload = form.get("file")
        data = await upload.read() if upload is not None and not isinstance(upload, str) \
            else b""
        if not data:
            return st.page(request, "admin.html", user, status=400, protocol=rt.protocol,
                           protocol_file=str(rt.settings.protocol),
                           error="choose the organisation file (YAML) to load")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "organisation.yaml"
                path.write_bytes(data[:5_000_000])
                with db.transaction(rt.engine) as session:
                    result = load_org(session, path, rt.protocol)
        except DrpError as exc:
            return st.page(request, "admin.html", user, status=400, protocol=rt.protocol,
                           protocol_file=str(rt.settings.protocol),
                           error=exc.message.replace(str(path), "the file"))
        return st.page(request, "admin.html", user, protocol=rt.protocol,
                       protocol_file=str(rt.settings.protocol),
                       done=f"Loaded {result.council}: {result.people} people,"
                            f" {result.teams} teams, {result.children} children.")

    def _admin_only(user: Any) -> None:
        if "admin" not in user.roles:
            raise st.Forbidden("only an administrator may open the administration pages")


def _actions(form: dict[str, str]) -> list[ActionIn]:
    out = []
    for i in range(1, 4):
        what = form.get(f"action{i}", "").strip()
        due = form.get(f"action{i}_due", "").strip()
        if not what and not due:
            continue
        if not what or not due:
            raise BadValue(f"agreed action {i} needs both what will be done and a due date")
        out.append(ActionIn(what, parse_date(due, f"action {i}'s due date"),
                            form.get(f"action{i}_owner") or None))
    return out


def _field_of(message: str) -> str | None:
    for word, field in (("summary", "summary"), ("impact", "impact"), ("detail", "detail"),
                        ("outcome wanted", "outcome_wanted"), ("theme", "theme"),
                        ("stage", "stage"), ("child", "child")):
        if word in message:
            return field
    return None
