"""Issue 15, "who did it, and when" (interface.md): every event and access-log row records its
channel (cli, web, api, flow), the operating-system user of a command line and the client
address of a web or API request; refused views are logged; lists and CSV exports are logged
with the ids shown; organisation loads leave an audit row without personal data; --now ahead
of the real clock is refused unless DRP_ALLOW_FUTURE_NOW=1."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import audit, db, timescales
from drp.alerts import AlertService
from drp.audit import Origin
from drp.clock import FixedClock, parse_instant
from drp.errors import NotFound
from drp.ladder.protocol import Protocol
from drp.models import AccessLog, Event

from .conftest import DATA, LONDON, TEST_PASSWORD, backends, sign_in
from .support.cli import Cli

ME = pwd.getpwuid(os.geteuid()).pw_name  # the account running the tests, as the OS knows it
PEOPLE = re.compile(r"@|Ada|Iro|Manager|Worker|riverside", re.IGNORECASE)  # names, e-mails


def rows(engine: Engine, model: Any, *where: Any) -> list[Any]:
    with Session(engine) as s:
        return list(s.exec(select(model).where(*where).order_by(col(model.id))))


def cli_engine(cli: Cli) -> Engine:
    return db.make_engine(cli.env["DRP_DATABASE_URL"])


# -- the command line ---------------------------------------------------------------------------
def test_a_command_line_event_and_view_record_the_channel_and_the_os_user(cli: Cli) -> None:
    # $USER and $LOGNAME are the caller's to set: the OS user comes from the process's uid.
    cli.env.update(USER="mallory", LOGNAME="mallory")
    a = cli.json("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
                 "--now", "2027-03-01T09:00")
    shown = cli.json("alert", "show", str(a["id"]), "--as", "iro.ada")
    (event,) = shown["events"]
    assert (event["channel"], event["os_user"], event["client"]) == ("cli", ME, None)
    assert ME != "mallory"
    engine = cli_engine(cli)
    views = rows(engine, AccessLog, AccessLog.action == "view")
    assert views and {(v.channel, v.os_user, v.client) for v in views} == {("cli", ME, None)}
    engine.dispose()


def test_a_refused_view_on_the_command_line_is_logged(cli: Cli) -> None:
    a = cli.json("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
                 "--now", "2027-03-01T09:00")
    refused = cli("alert", "show", str(a["id"]), "--as", "tm.gus", code=1)
    assert "no alert" in refused.stderr
    cli("alert", "show", "999", "--as", "tm.gus", code=1)
    cli("alert", "raise", "--as", "tm.gus", "--child", "R100", "--summary", "y",
        "--now", "2027-03-01T10:00", code=1)
    engine = cli_engine(cli)
    logged = rows(engine, AccessLog, AccessLog.action == "refused")
    assert [(r.actor, r.alert_id, r.channel, r.os_user) for r in logged] == [
        ("tm.gus", a["id"], "cli", ME), ("tm.gus", None, "cli", ME), ("tm.gus", None, "cli", ME)]
    assert f"alert {a['id']}" in (logged[0].detail or "")
    assert "drp alert show" in (logged[0].detail or "")
    assert "alert 999" in (logged[1].detail or "")
    assert "child 'R100'" in (logged[2].detail or "")
    engine.dispose()


def test_a_list_on_the_command_line_is_logged_with_the_ids_it_showed(cli: Cli) -> None:
    for child, iro in (("R100", "iro.ada"), ("R101", "iro.ben"), ("R200", "iro.ben")):
        cli.json("alert", "raise", "--as", iro, "--child", child, "--summary", "x",
                 "--now", "2027-03-01T09:00")
    listed = cli.json("alert", "list", "--as", "tm.fay")
    ids = sorted(v["id"] for v in listed)
    assert len(ids) == 2  # east-a's two, not west-a's
    engine = cli_engine(cli)
    summary = rows(engine, AccessLog, AccessLog.action == "list")
    assert len(summary) == 1 and (summary[0].detail or "").startswith("2 alerts shown")
    each = rows(engine, AccessLog, AccessLog.action == "listed")
    assert sorted(r.alert_id for r in each) == ids
    assert {(r.actor, r.channel, r.os_user) for r in each} == {("tm.fay", "cli", ME)}
    engine.dispose()


def test_an_organisation_load_on_the_command_line_is_audited_in_counts(cli: Cli,
                                                                      tmp_path: Path) -> None:
    bigger = tmp_path / "org2.yaml"
    text = (DATA / "org.yaml").read_text()
    bigger.write_text(text.replace(
        "  - {ref: R200,", "  - {ref: R300, team: west-a, iro: iro.ben}\n  - {ref: R200,"))
    cli("org", "load", str(bigger))
    engine = cli_engine(cli)
    loads = rows(engine, AccessLog, AccessLog.action == "org_load")[-1:]  # (and the folder's)
    assert [(r.actor, r.channel, r.os_user) for r in loads] == [("system", "cli", ME)]
    detail = loads[0].detail or ""
    assert "children 4 (+1)" in detail and "people 13" in detail
    assert not PEOPLE.search(detail), detail
    engine.dispose()


def test_now_ahead_of_the_real_clock_is_refused_unless_time_travel_is_allowed(cli: Cli) -> None:
    del cli.env["DRP_ALLOW_FUTURE_NOW"]
    refused = cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
                  "--now", "2099-03-01T09:00", code=1)
    assert refused.stderr.count("\n") == 1 and "DRP_ALLOW_FUTURE_NOW=1" in refused.stderr
    assert cli.json("alert", "list", "--as", "iro.ada") == []  # nothing changed
    cli("flows", "run", "timescales", "--now", "2099-03-01T09:00", code=1)  # before Prefect
    # The past is still allowed (the real clock's own present too), and so is the future
    # where DRP_ALLOW_FUTURE_NOW=1 says time may travel.
    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
        "--now", "2026-03-02T09:00")
    cli.env["DRP_ALLOW_FUTURE_NOW"] = "1"
    cli("alert", "respond", "1", "--as", "tm.fay", "--message", "ok",
        "--now", "2099-03-02T09:00")
    # Earlier than the alert's last event: refused as before, whatever the setting.
    late = cli("alert", "resolve", "1", "--as", "iro.ada", "--outcome", "done",
               "--now", "2099-03-01T09:00", code=1)
    assert "events must stay in order" in late.stderr


def test_a_timescale_flow_runs_rows_record_the_flow_channel(cli: Cli) -> None:
    """The flow's own task (its body, without a Prefect server): the escalation and reminder
    events it writes record the channel `flow` and the OS user running it."""
    from flows.timescales import apply_timescales

    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
        "--now", "2027-03-01T09:00")  # (and drp's settings now point at this folder)
    apply_timescales.fn("2027-03-15T09:00:00+00:00")
    engine = cli_engine(cli)
    system = rows(engine, Event, Event.actor == "system")
    assert system and {(e.channel, e.os_user, e.client) for e in system} == {("flow", ME, None)}
    engine.dispose()


# -- the web app and the API ------------------------------------------------------------------------
@pytest.fixture
def app(web: Any) -> Any:
    return web


def test_web_and_api_rows_record_their_channel_and_the_client_address(app: Any) -> None:
    web_app, _clock, rt = app
    from drp.web.auth import Auth

    token = Auth(rt.engine, rt.settings).new_api_token("iro.ada", "t", _clock.now())
    bearer = {"Authorization": f"Bearer {token}"}
    ada = sign_in(web_app, "iro.ada")
    made = ada.post("/api/alerts", json={"child": "R100", "summary": "x"}, headers=bearer)
    assert made.status_code == 201, made.text
    aid = made.json()["id"]
    (event,) = made.json()["events"]
    assert (event["channel"], event["client"], event["os_user"]) == ("api", "testclient", None)
    # Where it came from is the audit's: the actor and the IRO manager see it, a manager
    # reading the alert does not (it was every reader's: the review found it).
    for who, client in (("irom.cat", "testclient"), ("tm.fay", None)):
        token = Auth(rt.engine, rt.settings).new_api_token(who, "t", _clock.now())
        (seen,) = ada.get(f"/api/alerts/{aid}",
                          headers={"Authorization": f"Bearer {token}"}).json()["events"]
        assert (seen["channel"], seen["client"]) == ("api", client), who
    assert ada.get(f"/alerts/{aid}").status_code == 200
    assert ada.get(f"/api/alerts/{aid}", headers=bearer).status_code == 200
    views = rows(rt.engine, AccessLog, AccessLog.action == "view")
    assert [(v.channel, v.client, v.alert_id) for v in views][-2:] == [
        ("web", "testclient", aid), ("api", "testclient", aid)]
    with Session(rt.engine) as s:
        stored = s.exec(select(Event).where(Event.alert_id == aid)).one()
    assert (stored.channel, stored.client) == ("api", "testclient")


def test_refused_views_on_the_web_and_the_api_are_logged(app: Any) -> None:
    web_app, clock, rt = app
    from drp.web.auth import Auth

    ada = sign_in(web_app, "iro.ada")
    aid = ada.post("/api/alerts", json={"child": "R100", "summary": "x"},
                   headers={"X-CSRF-Token": ada.csrf}).json()["id"]
    gus = sign_in(web_app, "tm.gus")
    assert gus.get(f"/alerts/{aid}").status_code == 404
    token = Auth(rt.engine, rt.settings).new_api_token("tm.gus", "t", clock.now())
    assert gus.get(f"/api/alerts/{aid}",
                   headers={"Authorization": f"Bearer {token}"}).status_code == 404
    logged = rows(rt.engine, AccessLog, AccessLog.action == "refused")
    assert [(r.actor, r.alert_id, r.channel, r.client) for r in logged] == [
        ("tm.gus", aid, "web", "testclient"), ("tm.gus", aid, "api", "testclient")]
    assert f"GET /alerts/{aid}" in (logged[0].detail or "")
    assert f"GET /api/alerts/{aid}" in (logged[1].detail or "")


def test_web_lists_and_the_csv_export_are_logged_with_the_ids_shown(app: Any) -> None:
    web_app, _clock, rt = app
    ada, ben = sign_in(web_app, "iro.ada"), sign_in(web_app, "iro.ben")
    made = [c.post("/api/alerts", json={"child": child, "summary": "x"},
                   headers={"X-CSRF-Token": c.csrf}).json()["id"]
            for c, child in ((ada, "R100"), (ben, "R101"), (ben, "R200"))]
    fay = sign_in(web_app, "tm.fay")
    exported = fay.get("/alerts.csv")
    assert exported.status_code == 200
    east = sorted(made[:2])

    def last_list() -> tuple[AccessLog, list[int]]:
        summary = rows(rt.engine, AccessLog, AccessLog.action == "list")[-1]
        each = rows(rt.engine, AccessLog, AccessLog.action == "listed", AccessLog.id > summary.id)
        assert {(r.actor, r.channel, r.client) for r in each} <= {
            (summary.actor, summary.channel, summary.client)}
        return summary, sorted(r.alert_id for r in each)

    summary, ids = last_list()
    assert (summary.actor, summary.channel, summary.client) == ("tm.fay", "web", "testclient")
    assert "GET /alerts.csv" in (summary.detail or "") and "2 alerts shown" in (
        summary.detail or "")
    assert ids == east
    assert fay.get("/api/alerts").status_code == 200
    summary, ids = last_list()
    assert (summary.channel, ids) == ("api", east)


def test_an_organisation_load_on_the_web_is_audited_in_counts(app: Any) -> None:
    web_app, _clock, rt = app
    admin = sign_in(web_app, "admin.max")
    answer = admin.post("/admin/org", data={"csrf_token": admin.csrf},
                        files={"file": ("org.yaml", (DATA / "org.yaml").read_bytes())})
    assert answer.status_code == 200, answer.text
    loads = rows(rt.engine, AccessLog, AccessLog.action == "org_load")
    assert [(r.actor, r.channel, r.client) for r in loads] == [
        ("admin.max", "web", "testclient")]
    assert "children 3" in (loads[0].detail or "")
    assert not PEOPLE.search(loads[0].detail or ""), loads[0].detail


# -- the service layer and a flow run, on SQLite and PostgreSQL ----------------------------------
@backends
def test_every_row_a_unit_of_work_writes_carries_the_entry_points_origin(
        org: Engine, protocol: Protocol) -> None:
    from drp.calendar import WorkingCalendar

    def service(session: Session, when: str) -> AlertService:
        return AlertService(session, protocol=protocol, calendar=WorkingCalendar(),
                            clock=FixedClock(parse_instant(when, LONDON)), tz=LONDON)

    here = Origin("web", client="192.0.2.7", via="GET /alerts/1")
    with audit.coming_from(here), db.transaction(org) as s:
        aid = service(s, "2027-03-01T09:00").raise_alert("iro.ada", "R100", "x").id
        service(s, "2027-03-01T09:00").show(aid, "iro.ada")
    # A refusal rolls its unit of work back: the entry point keeps its row afterwards.
    refused: list[dict[str, Any]] = []
    with audit.coming_from(here), pytest.raises(NotFound), db.transaction(org) as s:
        svc = service(s, "2027-03-01T10:00")
        refused = svc.refused
        svc.show(aid, "tm.gus")
    audit.keep_refused(org, refused)
    # A flow's run: the overdue escalation goes through the set-based writer (drp/batch.py).
    with audit.coming_from(Origin.flow("drp-timescales")):
        timescales.run(org, lambda s: service(s, "2027-03-15T09:00"), protocol,
                       WorkingCalendar(), parse_instant("2027-03-15T09:00", LONDON).date())
    events = rows(org, Event, Event.alert_id == aid)
    assert (events[0].actor, events[0].channel, events[0].client, events[0].os_user) == (
        "iro.ada", "web", "192.0.2.7", None)
    system = [(e.kind, e.channel, e.os_user) for e in events if e.actor == "system"]
    assert system and all(c == "flow" and u == ME for _k, c, u in system), system
    logged = rows(org, AccessLog)
    assert [(r.actor, r.action, r.channel, r.client) for r in logged] == [
        ("iro.ada", "view", "web", "192.0.2.7"), ("tm.gus", "refused", "web", "192.0.2.7")]


def test_an_origin_names_only_the_known_channels() -> None:
    with pytest.raises(ValueError, match="channel"):
        Origin("email")
    assert Origin.cli().os_user == ME and Origin.cli().channel == "cli"
    assert TEST_PASSWORD  # (the web tests sign in with it)


# -- drp demo, drp simulate and drp user ------------------------------------------------------
def test_the_demo_and_a_simulated_year_record_the_command_line(tmp_path: Path) -> None:
    """`drp demo` and `drp simulate` write through the service layer outside the shared
    set-up's unit of work: their rows record the command line and the OS user too."""
    for folder, commands in (("demo", [("demo",)]), ("simulated", [
            ("init",), ("simulate", "--year", "2025", "--profile", "peterborough",
                        "--scale", "0.05", "--json")])):
        (tmp_path / folder).mkdir()
        c = Cli(tmp_path / folder)
        for command in commands:
            c(*command)
        engine = cli_engine(c)
        events = rows(engine, Event)
        logged = rows(engine, AccessLog)
        assert events, folder
        assert {(r.channel, r.os_user, r.client) for r in events + logged} == {
            ("cli", ME, None)}, folder
        engine.dispose()
        c.close()


def test_a_token_issued_on_the_command_line_names_the_channel_user_and_command(
        cli: Cli) -> None:
    """`drp user token`'s audit row: channel cli, the OS user, and the command (from
    drp.cli.shared.origin: the leading words of the command line), never the token."""
    token = cli("user", "token", "iro.ada", "--label", "case system").stdout.strip()
    cli("user", "token", "--revoke", "1")
    engine = cli_engine(cli)
    issued = rows(engine, AccessLog, col(AccessLog.action).in_(["token_issued",
                                                               "token_revoked"]))
    assert [(r.action, r.channel, r.os_user, r.client) for r in issued] == [
        ("token_issued", "cli", ME, None), ("token_revoked", "cli", ME, None)]
    assert all(token not in (r.detail or "") for r in issued)
    assert all((r.detail or "").endswith(" (drp user token)") for r in issued), issued
    engine.dispose()
