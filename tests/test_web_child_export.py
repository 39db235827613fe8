"""The IRO manager's subject access button on the child's page: a POST (with the session's
CSRF token) to /children/{ref}/export answers everything drp holds about the child as
child-{ref}.json (drp.subject_access.export_child), never cached, recorded in the access log
from the web; anyone else, and a child that does not exist, get the same 404."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlmodel import Session, col, select

from drp import db
from drp.models import AccessLog

from .conftest import backends, sign_in

BUTTON = "Download everything drp holds about this child (subject access)"


def two_alerts(rt: Any, clock: Any) -> dict[str, int]:
    """One alert on R100 and one on R101: the same team, head of service and team manager."""
    ids = {}
    for iro, child, summary in (("iro.ada", "R100", "ALPHA plan not shared"),
                                ("iro.ben", "R101", "OMEGA contact stopped")):
        with db.transaction(rt.engine) as s:
            alert = rt.service(s, clock).raise_alert(iro, child, summary, stage="informal",
                                                     theme="permanence_planning")
            ids[child] = int(alert.id)
    return ids


def log(rt: Any, actor: str, action: str) -> list[AccessLog]:
    with Session(rt.engine) as s:
        return list(s.exec(select(AccessLog).where(
            AccessLog.actor == actor, AccessLog.action == action).order_by(col(AccessLog.id))))


def export(client: Any, ref: str, token: str | None = None) -> Any:
    return client.post(f"/children/{ref}/export",
                       data={"csrf_token": client.csrf if token is None else token},
                       follow_redirects=False)


def test_the_button_shows_only_to_the_iro_manager(web: Any) -> None:
    app, clock, rt = web
    two_alerts(rt, clock)
    page = sign_in(app, "irom.cat").get("/children/R100")
    assert page.status_code == 200 and BUTTON in page.text
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>\s*'
                     r'<input type="hidden" name="csrf_token" value="([^"]+)">', page.text)
    assert form and form.group(1) == "/children/R100/export"
    # Those who may read the child's page, but not export it.
    for who in ("iro.ada", "sw.dan", "tm.fay", "hos.ivy", "ad.kim", "dcs.lou"):
        other = sign_in(app, who).get("/children/R100")
        assert other.status_code == 200, who
        assert BUTTON not in other.text and "/export" not in other.text, who


@backends
def test_the_export_holds_the_childs_alert_and_not_another_childs(web_on: Any) -> None:
    app, clock, rt = web_on
    ids = two_alerts(rt, clock)
    client = sign_in(app, "irom.cat")
    r = export(client, "R100")
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"] == 'attachment; filename="child-R100.json"'
    assert r.headers["cache-control"] == "no-store"
    document = json.loads(r.text)
    assert document["child"] == "R100" and document["exported_by"] == "irom.cat"
    assert [a["id"] for a in document["alerts"]] == [ids["R100"]]
    assert document["alerts"][0]["summary"] == "ALPHA plan not shared"
    assert "OMEGA" not in r.text and "R101" not in r.text
    # Recorded in the access log, from the web.
    rows = log(rt, "irom.cat", "child_export")
    assert len(rows) == 1 and rows[0].channel == "web"
    assert rows[0].detail == "child R100: 1 alerts exported"
    exported = log(rt, "irom.cat", "exported")
    assert [(e.alert_id, e.channel) for e in exported] == [(ids["R100"], "web")]


@backends
def test_anyone_else_and_an_unknown_child_get_the_same_404(web_on: Any) -> None:
    app, clock, rt = web_on
    two_alerts(rt, clock)
    unknown = export(sign_in(app, "irom.cat"), "R999")
    assert unknown.status_code == 404
    for who in ("iro.ada", "tm.fay", "hos.ivy", "dcs.lou", "admin.max"):
        r = export(sign_in(app, who), "R100")
        assert r.status_code == 404, who
        assert "ALPHA" not in r.text and "content-disposition" not in r.headers, who
        assert "not one you can see" in r.text and "not one you can see" in unknown.text
        refused = log(rt, who, "refused")
        assert refused and refused[-1].channel == "web", who
        assert refused[-1].detail == "asked for child 'R100' (child export)", who
    assert not log(rt, "iro.ada", "child_export")


def test_the_export_needs_the_forms_csrf_token_and_a_signed_in_person(web: Any) -> None:
    app, clock, rt = web
    two_alerts(rt, clock)
    client = sign_in(app, "irom.cat")
    assert export(client, "R100", token="forged").status_code == 403
    assert client.get("/children/R100/export").status_code in (404, 405)
    from fastapi.testclient import TestClient

    anon = TestClient(app, base_url="https://testserver")
    r = anon.post("/children/R100/export", data={"csrf_token": "x"}, follow_redirects=False)
    assert r.status_code in (303, 401, 403) and "ALPHA" not in r.text
    assert not log(rt, "irom.cat", "child_export")


PDF_BUTTON = "Download it as a PDF to read and print"


@backends
def test_the_pdf_button_gives_the_same_export_as_drp_child_export_format_pdf(
        web_on: Any) -> None:
    from drp.subject_access import as_pdf

    app, clock, rt = web_on
    ids = two_alerts(rt, clock)
    client = sign_in(app, "irom.cat")
    page = client.get("/children/R100").text
    forms = re.findall(r'<form method="post" action="([^"]+)"[^>]*>\s*<input type="hidden"'
                       r' name="csrf_token" value="[^"]+">\s*(?:<input type="hidden"'
                       r' name="format" value="(\w+)">)?', page)
    assert forms == [("/children/R100/export", ""), ("/children/R100/export", "pdf")]
    assert PDF_BUTTON in page
    for who in ("iro.ada", "tm.fay", "dcs.lou"):
        assert PDF_BUTTON not in sign_in(app, who).get("/children/R100").text, who

    r = client.post("/children/R100/export", data={"csrf_token": client.csrf, "format": "pdf"},
                    follow_redirects=False)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == 'attachment; filename="child-R100.pdf"'
    assert r.headers["cache-control"] == "no-store"
    assert r.content.startswith(b"%PDF-") and r.content.rstrip().endswith(b"%%EOF")
    rows = log(rt, "irom.cat", "child_export")
    assert len(rows) == 1 and rows[0].channel == "web"
    assert [e.alert_id for e in log(rt, "irom.cat", "exported")] == [ids["R100"]]
    # The same code as the command line's: the JSON export rendered by subject_access.as_pdf.
    document = json.loads(export(client, "R100").text)
    assert len(as_pdf(document, rt.settings.tz)) > 1000

    # Refused alike, and without the form's token.
    ada = sign_in(app, "iro.ada")
    assert ada.post("/children/R100/export", data={
        "csrf_token": ada.csrf, "format": "pdf"}).status_code == 404
    assert client.post("/children/R100/export", data={
        "csrf_token": "forged", "format": "pdf"}).status_code == 403
