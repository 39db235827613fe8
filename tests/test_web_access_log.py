"""Issue 19: a page's access-log rows are written by the app's AccessLogWriter (many requests'
rows in one transaction) instead of in the page's own transaction, and still before the page is
answered: no page is ever answered whose row is not committed, including while the server is
stopping; a row that cannot be written keeps its page from being shown, and is not kept (nor
does it fail any other page's write)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from drp import audit

from .conftest import backends, forget_settings, point_drp_at, prepare, sign_in
from .smtp import free_port
from .support.cli import wait_until_serving

DRP = str(Path(sys.executable).with_name("drp"))
CLIENTS = 4
BEFORE_STOP = 40  # pages answered before the server is told to stop


def views(engine: Any, alert_id: int, actor: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM access_log WHERE action = 'view' AND alert_id = :a"
            " AND actor = :u"), {"a": alert_id, "u": actor}).scalar_one())


def test_every_page_answered_has_its_row_when_the_server_stops_under_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`drp serve`, four clients opening an alert's page as fast as it answers; the server is
    stopped (SIGTERM) while they do. Every page answered has its view row, whatever was in
    flight when it stopped."""
    from drp import runtime as runtime_module
    from drp.keys import secret_key
    from drp.models import Person
    from drp.web.auth import Auth, Signed

    point_drp_at(monkeypatch, tmp_path)
    monkeypatch.setenv("DRP_SECRET_KEY", "access-log-" * 4)
    forget_settings()
    rt = runtime_module.runtime()
    prepare(rt)
    from sqlmodel import Session, select

    from drp.clock import Clock
    from drp.db import transaction

    with transaction(rt.engine) as s:
        alert_id = rt.service(s, Clock()).raise_alert("iro.ada", "R100", "Seen under load",
                                                      separate=True).id
    with Session(rt.engine) as s:
        ada = s.exec(select(Person).where(Person.username == "iro.ada")).one()
    token, _web = Auth(rt.engine, rt.settings).start_session(ada.id or 0, datetime.now(UTC))
    cookie = Signed(secret_key(rt.settings)).sign(token, "session")
    url = str(rt.settings.database_url)
    rt.engine.dispose()
    forget_settings()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DRP_")},
           "DRP_DATABASE_URL": url, "DRP_MAIL_DIR": str(tmp_path / "mail"),
           "DRP_BASE_URL": base, "DRP_SECRET_KEY": "access-log-" * 4}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([DRP, "serve", "--no-flows", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT)
    answered = [0] * CLIENTS
    enough = threading.Event()
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(base_url=base, cookies={"drp_session": cookie}, timeout=30) as c:
            while True:
                try:
                    r = c.get(f"/alerts/{alert_id}")
                except httpx.TransportError:
                    return  # the server has stopped
                if r.status_code != 200:
                    return
                assert "Seen under load" in r.text
                with lock:
                    answered[i] += 1
                    if sum(answered) >= BEFORE_STOP:
                        enough.set()

    try:
        wait_until_serving(base, proc, tmp_path / "serve.log")
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        assert enough.wait(120), "the pages were not answered"
        proc.terminate()  # while the clients are still asking
        # (uvicorn stops gracefully, then ends by the signal it was sent)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()
        for t in threads:
            t.join(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()

    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        kept = views(engine, alert_id, "iro.ada")
    finally:
        engine.dispose()
    assert sum(answered) >= BEFORE_STOP
    # Each page answered was recorded before it was answered; a page cut off by the stop
    # may have been recorded and not answered, never the other way round.
    assert kept >= sum(answered), (kept, answered)


def test_a_page_whose_row_cannot_be_written_is_not_shown_and_nothing_of_it_is_kept(
        web: Any) -> None:
    """The access log's insert fails (the database, not a row): the page is not answered (as
    when the row was written in the page's own transaction) and its row is not kept, nor left
    waiting; the next page is answered and recorded."""
    app, _clock, rt = web
    client = sign_in(app, "iro.ada")
    raised = client.post("/api/alerts", json={"child": "R100", "summary": "Audited",
                                              "separate": True},
                         headers={"X-CSRF-Token": client.csrf})
    assert raised.status_code == 201, raised.text
    alert_id = raised.json()["id"]
    before = views(rt.engine, alert_id, "iro.ada")
    failures = [1]

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO access_log") and failures:
            failures.pop()
            raise RuntimeError("the disk is full")

    event.listen(rt.engine, "before_cursor_execute", fail)
    try:
        with pytest.raises(RuntimeError, match="the disk is full"):
            client.get(f"/alerts/{alert_id}")
        assert views(rt.engine, alert_id, "iro.ada") == before  # nothing half-written
        assert app.state.drp.access_log.pending() == 0  # nothing waits to fail again
        assert client.get(f"/alerts/{alert_id}").status_code == 200
    finally:
        event.remove(rt.engine, "before_cursor_execute", fail)
    assert views(rt.engine, alert_id, "iro.ada") == before + 1
    assert app.state.drp.access_log.pending() == 0


def _logged(engine: Any, actor: str) -> list[str | None]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT detail FROM access_log WHERE actor = :u"
                                      " ORDER BY id"), {"u": actor}).scalars())


def _request(writer: Any, outcome: dict[str, BaseException | None], name: str,
             rows: list[dict[str, Any]]) -> None:
    """A request's write, in a thread of its own: its outcome kept (asserted by the test)."""
    try:
        writer.write(rows)
        outcome[name] = None
    except BaseException as exc:
        outcome[name] = exc


@backends
def test_a_row_that_can_never_be_written_fails_its_own_request_and_no_other(org: Any) -> None:
    """A row naming an alert that is not there (retention removed it a moment before: its
    foreign key) fails the request that handed it over, in a batch with another request's
    rows or alone, and never a later request: the others' rows are written."""
    writer = audit.AccessLogWriter(org)
    at = datetime(2027, 3, 1, 9, tzinfo=UTC)

    def row(detail: str, alert_id: int | None = None) -> dict[str, Any]:
        return {"at": at, "actor": "iro.ada", "action": "view", "alert_id": alert_id,
                "detail": detail}

    with pytest.raises(IntegrityError):
        writer.write([row("gone", alert_id=2**30)])
    writer.write([row("after")])  # (before: the failed row was put back and failed this too)
    assert _logged(org, "iro.ada") == ["after"] and writer.pending() == 0

    # Two requests' rows in one batch: both handed over while another batch is written.
    outcome: dict[str, BaseException | None] = {}

    def request(name: str, rows: list[dict[str, Any]]) -> None:
        _request(writer, outcome, name, rows)

    threads = [threading.Thread(target=request, args=("bad", [row("bad", alert_id=2**30)])),
               threading.Thread(target=request, args=("good", [row("good"), row("too")]))]
    with writer._turn:  # (a batch being written: the two requests wait their turn)
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while writer.pending() < 3 and time.monotonic() < deadline:
            time.sleep(0.001)  # (until both have handed their rows over)
        assert writer.pending() == 3
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert isinstance(outcome["bad"], IntegrityError), outcome
    assert outcome["good"] is None, outcome
    assert _logged(org, "iro.ada") == ["after", "good", "too"] and writer.pending() == 0


class Interrupted(BaseException):
    """As KeyboardInterrupt, without interrupting the test run."""


def _row(detail: str, alert_id: int | None = None) -> dict[str, Any]:
    return {"at": datetime(2027, 3, 1, 9, tzinfo=UTC), "actor": "iro.ada", "action": "view",
            "alert_id": alert_id, "detail": detail}


@backends
def test_a_writer_interrupted_keeps_the_others_rows_and_not_its_own(
        org: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer of a batch is interrupted while writing it: its own page is not shown and
    its rows are not kept (nor left waiting); the rows of another request in the batch are
    written, by it or by the next writer; no failure is left behind for a request that will
    never ask for it."""
    writer = audit.AccessLogWriter(org)
    insert = writer._insert
    inserts: list[int] = []
    interrupt_at = [1]

    def interrupted(rows: list[dict[str, Any]]) -> None:
        inserts.append(len(rows))
        if len(inserts) in interrupt_at:
            raise Interrupted
        insert(rows)

    monkeypatch.setattr(writer, "_insert", interrupted)
    with pytest.raises(Interrupted):
        writer.write([_row("mine")])  # (interrupted in its batch's insert)
    assert writer.pending() == 0 and not writer._failed
    writer.write([_row("next")])
    assert _logged(org, "iro.ada") == ["next"]

    # Two requests: A's row cannot be written (each request's rows are then written alone),
    # and the insert after A's is interrupted; either may be the batch's writer.
    inserts.clear()
    interrupt_at[:] = [3]
    outcome: dict[str, BaseException | None] = {}

    def request(name: str, rows: list[dict[str, Any]]) -> None:
        _request(writer, outcome, name, rows)

    threads = [threading.Thread(target=request, args=("a", [_row("a", alert_id=2**30)])),
               threading.Thread(target=request, args=("b", [_row("b")]))]
    with writer._turn:  # (a batch being written: both wait, their rows handed over in order)
        for n, thread in enumerate(threads, start=1):
            thread.start()
            deadline = time.monotonic() + 30
            while writer.pending() < n and time.monotonic() < deadline:
                time.sleep(0.001)
            assert writer.pending() == n
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert outcome["a"] is not None, outcome  # (its row cannot be written, or it was interrupted)
    kept = _logged(org, "iro.ada")
    assert ("b" in kept) == (outcome["b"] is None), (kept, outcome)  # shown if and only if kept
    assert isinstance(outcome["b"], Interrupted) or outcome["b"] is None, outcome
    assert "a" not in kept and not writer._failed and writer.pending() == 0, (kept, outcome)


def fays_inbox(web: Any, before: Any = None) -> tuple[Any, list[str]]:
    """Three alerts in tm.fay's inbox, then her inbox page (after `before()`, if given) with
    the statements its request sent."""
    app, _clock, rt = web
    ada = sign_in(app, "iro.ada")
    for n in range(3):
        assert ada.post("/api/alerts", json={"child": "R100", "summary": f"Inbox {n}",
                                             "separate": True},
                        headers={"X-CSRF-Token": ada.csrf}).status_code == 201
    client = sign_in(app, "tm.fay")
    app.state.drp.page_cache.clear()  # (signing in landed on her inbox, which was kept)
    if before is not None:
        before()
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(rt.engine, "before_cursor_execute", count)
    try:
        page = client.get("/inbox")
    finally:
        event.remove(rt.engine, "before_cursor_execute", count)
    return page, seen


def test_the_inbox_lists_and_views_in_one_insert_after_the_pages_reads(web: Any) -> None:
    """A list's rows (its own and one `listed` a row shown) go in one statement, written after
    the page's unit of work: none inside it (where, on SQLite, it would hold the database's
    write lock for the rest of the page)."""
    rt = web[2]

    def logged() -> dict[str, int]:
        with rt.engine.connect() as conn:
            return dict(conn.execute(text(  # type: ignore[arg-type]
                "SELECT action, count(*) FROM access_log WHERE actor = 'tm.fay'"
                " AND action IN ('list', 'listed') GROUP BY action")).all())

    counted: list[dict[str, int]] = []
    page, seen = fays_inbox(web, lambda: counted.append(logged()))
    before = counted[0]
    assert page.status_code == 200
    inserts = [i for i, s in enumerate(seen) if s.startswith("INSERT INTO access_log")]
    assert len(inserts) == 1, seen
    after = logged()
    assert after.get("list", 0) - before.get("list", 0) == 1, (before, after)
    assert after.get("listed", 0) - before.get("listed", 0) == 3, (before, after)


def test_the_pages_read_events_by_alert_not_every_event_of_a_kind(web: Any) -> None:
    """The inbox, the responded list (and the navigation's count of it on every page) and an
    alert's page read the events of the alerts they show by alert, through the (alert_id,
    seq) index: not every response or closure in the council's history, which SQLite's
    planner (no statistics) would rather walk through the index on the event's kind, a page
    then costing more each year (drp.db.met_by_many)."""
    app, _clock, rt = web
    ada = sign_in(app, "iro.ada")
    for n in range(12):  # (from ten alerts on, SQLite's planner turns to the kind's index)
        made = ada.post("/api/alerts", json={"child": "R100", "summary": f"Plans {n}",
                                             "separate": True},
                        headers={"X-CSRF-Token": ada.csrf})
        assert made.status_code == 201, made.text
    client = sign_in(app, "tm.fay")
    sent: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.startswith("SELECT") and " event" in statement:
            sent.append((statement, parameters))

    event.listen(rt.engine, "before_cursor_execute", keep)
    try:
        for path in ("/inbox", "/responded", f"/alerts/{made.json()['id']}"):
            assert client.get(path).status_code == 200, path
    finally:
        event.remove(rt.engine, "before_cursor_execute", keep)
    assert any("event.kind IN" in s for s, _ in sent)  # the list's dates among them
    assert any("event.kind =" in s for s, _ in sent)  # and the responded count
    with rt.engine.connect() as conn:
        plans = {s: " / ".join(row[3] for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + s, p).all()) for s, p in sent}
    walked = {s: plan for s, plan in plans.items() if "ix_event_kind" in plan}
    assert not walked, walked
    dates = [plan for s, plan in plans.items() if "event.kind IN" in s]  # a list's, a page's
    assert dates and all("INDEX sqlite_autoindex_event_1 (alert_id=?)" in p for p in dates), dates


def test_an_alerts_page_its_print_view_and_the_childs_page_read_only_the_people_they_name(
        web: Any) -> None:
    """Each names its people (the IRO, who responded, who is responsible, who acted in the
    timeline) from one read by id or username, not from everyone in the organisation read on
    every view (a page's cost then grew with the council's staff)."""
    app, _clock, rt = web
    ada = sign_in(app, "iro.ada")
    made = ada.post("/api/alerts", json={"child": "R100", "summary": "Plans"},
                    headers={"X-CSRF-Token": ada.csrf})
    assert made.status_code == 201, made.text
    aid = made.json()["id"]
    fay = sign_in(app, "tm.fay")
    said = fay.post(f"/api/alerts/{aid}/respond", json={"message": "We will meet"},
                    headers={"X-CSRF-Token": fay.csrf})
    assert said.status_code == 200, said.text
    seen: list[str] = []

    def keep(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    for path, names in ((f"/alerts/{aid}", ("Ada Iro", "Fay Manager")),
                        (f"/alerts/{aid}/print", ("Ada Iro", "Fay Manager")),
                        ("/children/R100", ("Ada Iro",))):
        seen.clear()
        event.listen(rt.engine, "before_cursor_execute", keep)
        try:
            page = ada.get(path)
        finally:
            event.remove(rt.engine, "before_cursor_execute", keep)
        assert page.status_code == 200, (path, page.text[:300])
        everyone = [s for s in seen if s.startswith("SELECT") and s.endswith("FROM person")]
        assert everyone == [], (path, everyone)
        for name in names:
            assert name in page.text.split("</header>", 1)[-1], (path, name)
    # The child's IRO, by name, on the page of a child with no alert (seen by its team manager).
    seen.clear()
    assert "Ben Iro" in fay.get("/children/R101").text.split("</header>", 1)[-1]


def test_a_condition_told_to_sqlites_planner_keeps_its_tables_and_brackets() -> None:
    """db.met_by_many / met_by_few: the condition's table is in the query's FROM though
    nothing else names it, and an OR stays bracketed beside other conditions."""
    from sqlalchemy import func, or_, select
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlmodel import col

    from drp import db
    from drp.models import Event

    alone = select(func.count()).where(db.met_by_many(col(Event.kind) == "x"))
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        assert "FROM event" in str(alone.compile(dialect=dialect))
    either = select(Event.id).where(db.met_by_few(or_(col(Event.kind) == "a",
                                                      col(Event.kind) == "b")),
                                    col(Event.seq) == 1)
    pg = " ".join(str(either.compile(dialect=postgresql.dialect())).split())
    assert "WHERE (event.kind = " in pg and ") AND event.seq = " in pg, pg
    lite = " ".join(str(either.compile(dialect=sqlite.dialect())).split())
    assert "WHERE likelihood(event.kind = ? OR event.kind = ?, 0.001) AND" in lite, lite


def test_the_inbox_page_reads_its_alerts_once_and_only_the_people_it_names(web: Any) -> None:
    """The frame beside the inbox counts the inbox as the list just shown (its length):
    nothing the page's unit of work sends between the list and its frame (the council's name)
    makes it read them again. The page names the people its rows name, read once by id (when
    the process has not kept them under the organisation's token already), not everyone in
    the organisation."""
    from drp import orgtoken

    page, seen = fays_inbox(web, orgtoken._KEPT.clear)  # nobody kept yet (drp.orgtoken)
    assert page.status_code == 200 and page.text.count("Inbox ") >= 3
    alerts = [s for s in seen if s.startswith("SELECT alert.id, alert.child_id, alert.iro_id, alert.kind")]
    assert len(alerts) == 1, alerts  # the list; its count in the frame is its length
    everyone = [s for s in seen if s.rstrip().endswith("FROM person")]
    assert everyone == []
    by_id = [s for s in seen if s.startswith("SELECT person.id") and "WHERE person.id IN" in s
             and "UNION" not in s]  # (not the actor's statement, which finds whom they cover)
    assert len(by_id) == 1, seen
    # Who is responsible, by name, in each row (her name is in the page's header too).
    assert page.text.count('data-label="Responsible"><div>Fay Manager') == 3, page.text
