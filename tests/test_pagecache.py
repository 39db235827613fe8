"""Issue 19: a page answered again from what the process kept (drp.web.pagecache) while nothing
it shows has changed: the data's token (migration 0019) moves with every write to what pages
show, by any writer; a kept page is never another session's, never a day old, never shown
after a change; each answer writes its access-log rows as a page made anew does, and carries
new form keys; a page that read what the tokens do not guard is made anew every time."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from drp import db
from drp.dataversion import WATCHED
from drp.web import pagecache

from .conftest import Run, backends, sign_in

# A write to tables the data's token guards, in a database holding one raised alert (each
# table's triggers, every verb, are checked below).
WRITES = [
    ("alert", "UPDATE alert SET summary = summary"),
    ("child", "UPDATE child SET ref = ref"),
    ("closure", "INSERT INTO closure (day, reason, created_by, created_at) VALUES"
     " ('2027-03-29', 'A closure day', 'admin', '2027-03-01 09:00:00')"),
    ("casenote_export", "INSERT INTO casenote_export (event_id, exported_at) SELECT min(id),"
     " '2027-03-01 09:00:00' FROM event"),
]
FORM_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')


def token(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT token FROM data_version")).scalar_one())


def raise_one(rt: Any, summary: str = "Care plan not updated") -> int:
    from drp.clock import parse_instant

    from .conftest import LONDON

    class At:
        def now(self) -> Any:
            return parse_instant("2027-03-01T09:00", LONDON)

    with db.transaction(rt.engine) as s:
        alert = rt.service(s, At()).raise_alert("iro.ada", "R100", summary, separate=True)
    return int(alert.id)


def reads(engine: Engine, actor: str) -> list[tuple[str, int | None]]:
    with engine.connect() as conn:
        return [(a, i) for a, i in conn.execute(text(
            "SELECT action, alert_id FROM access_log WHERE actor = :u AND action IN"
            " ('view', 'list', 'listed') ORDER BY id"), {"u": actor})]


@backends
@pytest.mark.parametrize(("table", "statement"), WRITES[:4], ids=[t for t, _s in WRITES[:4]])
def test_every_write_to_what_pages_show_changes_the_token(org: Engine, run: Run, table: str,
                                                          statement: str) -> None:
    before = token(org)
    run("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "Care plan not"
                                                     " updated", separate=True))
    raised = token(org)
    assert raised != before  # the alert, its event
    with org.begin() as conn:
        conn.execute(text(statement))
    assert token(org) != raised, table


@backends
def test_every_table_has_its_triggers_for_every_kind_of_write(org: Engine) -> None:
    """Every table the token guards, every verb (a migration that rebuilds a table on SQLite
    drops its triggers); on PostgreSQL each row's trigger waits for the commit."""
    with org.connect() as conn:
        if org.dialect.name == "postgresql":
            found = set(map(tuple, conn.execute(text(
                "SELECT c.relname, t.tgname, t.tgdeferrable, t.tgtype & 61 FROM pg_trigger t"
                " JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname LIKE '%\\_data\\_%'"
                " AND c.relnamespace = current_schema()::regnamespace")).all()))
            wanted = {(table, f"{table}_{name}", deferrable, kinds) for table in WATCHED
                      for name, deferrable, kinds in (
                          ("data_changed", True, 1 | 4 | 8 | 16),  # each row, at commit
                          ("data_truncated", False, 32))}
            assert found == wanted, (found - wanted, wanted - found)
        else:
            names = set(conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
            assert {f"{t}_data_changed_{v}" for t in WATCHED
                    for v in ("insert", "update", "delete")} <= names


@backends
def test_the_token_moves_once_a_transaction_and_only_at_its_commit(org: Engine) -> None:
    before = token(org)
    with org.connect() as conn:
        conn.execute(text("UPDATE child SET ref = ref"))
        if org.dialect.name == "postgresql":  # (SQLite: one writer, nobody reads it between)
            assert token(org) == before  # not before the commit: the change is not seen yet
        conn.commit()
    after = token(org)
    assert after != before
    with org.connect() as conn:
        conn.execute(text("UPDATE child SET ref = ref"))
        conn.rollback()
    assert token(org) == after  # a change rolled back moves nothing


@backends
def test_a_kept_page_is_the_same_page_and_each_answer_is_recorded(web_on: Any) -> None:
    app, _clock, rt = web_on
    alert_id = raise_one(rt)
    tm = sign_in(app, "tm.fay")
    first = tm.get("/inbox")
    seen = len(pagecache._TABLES)
    again = tm.get("/inbox")
    assert first.status_code == again.status_code == 200
    assert f"Alert {alert_id}" in first.text
    assert again.text == first.text
    assert len(pagecache._TABLES) == seen  # no statement compiled: answered from the cache
    assert app.state.drp.page_cache is not None and len(app.state.drp.page_cache) >= 1
    # Each answer wrote its rows: the list and the alert it listed, twice, in that order.
    listed = [r for r in reads(rt.engine, "tm.fay") if r != ("view", None)]
    assert listed[-4:] == [("list", None), ("listed", alert_id)] * 2


@backends
def test_a_kept_alert_page_has_new_form_keys_and_its_view_each_time(web_on: Any) -> None:
    app, _clock, rt = web_on
    alert_id = raise_one(rt)
    iro = sign_in(app, "iro.ada")
    pages = [iro.get(f"/alerts/{alert_id}?act=withdraw") for _ in range(3)]
    keys = [FORM_KEY.findall(p.text) for p in pages]
    assert keys[0] and all(len(k) == len(keys[0]) for k in keys)
    assert len({k for ks in keys for k in ks}) == 3 * len(keys[0])  # every key new
    assert all(pagecache._KEY_MARK not in p.text for p in pages)
    assert FORM_KEY.sub("", pages[2].text) == FORM_KEY.sub("", pages[0].text)
    assert reads(rt.engine, "iro.ada").count(("view", alert_id)) == 3


@backends
def test_a_change_by_any_writer_is_on_the_next_page(web_on: Any) -> None:
    app, _clock, rt = web_on
    alert_id = raise_one(rt)
    iro = sign_in(app, "iro.ada")
    assert "Care plan not updated" in iro.get(f"/alerts/{alert_id}").text
    with rt.engine.begin() as conn:  # (another process, a script: no unit of work of drp's)
        conn.execute(text("UPDATE alert SET summary = 'Placement plan late' WHERE id = :i"),
                     {"i": alert_id})
    assert "Placement plan late" in iro.get(f"/alerts/{alert_id}").text
    with rt.engine.begin() as conn:  # the organisation's token: a person's name
        conn.execute(text("UPDATE person SET name = 'Ada Renamed' WHERE username = 'iro.ada'"))
    assert "Ada Renamed" in iro.get(f"/alerts/{alert_id}").text


@backends
def test_a_kept_page_is_never_another_sessions(web_on: Any) -> None:
    app, _clock, rt = web_on
    raise_one(rt)
    one, other = sign_in(app, "iro.ada"), sign_in(app, "iro.ada")  # (signing in writes)
    first, second = one.get("/my-alerts"), other.get("/my-alerts")
    again = one.get("/my-alerts")
    csrf = re.compile(r'name="csrf_token" value="([^"]+)"')
    assert csrf.findall(first.text) == csrf.findall(again.text) == [one.csrf]
    assert csrf.findall(second.text) == [other.csrf] != [one.csrf]
    assert len(app.state.drp.page_cache) == 2


@backends
def test_a_kept_page_is_not_shown_the_next_day(web_on: Any) -> None:
    from drp.clock import parse_instant

    from .conftest import LONDON

    app, clock, rt = web_on
    raise_one(rt)
    clock.instant = parse_instant("2027-03-01T23:55", LONDON)
    tm = sign_in(app, "tm.fay")
    tm.get("/inbox")
    tm.get("/inbox")
    assert len(app.state.drp.page_cache) == 1
    clock.move(minutes=10)  # (the same session, still live, the next day)
    tm.get("/inbox")
    assert len(app.state.drp.page_cache) == 2


def test_a_page_that_read_what_the_tokens_do_not_guard_is_not_kept() -> None:
    making = pagecache._Making()
    making.read |= {"alert", "person", "org_version", "data_version"}
    making.wrote |= {"access_log"}
    assert making.keepable
    for field, table in (("read", "web_session"), ("read", "outbox"), ("wrote", "alert")):
        other = pagecache._Making(read=set(making.read), wrote=set(making.wrote))
        getattr(other, field).add(table)
        assert not other.keepable, (field, table)
    assert not pagecache._Making(unknown=True).keepable


def test_a_page_that_read_a_table_not_guarded_is_made_anew(
        web: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard in place: with the alerts taken out of what the tokens guard, the inbox
    (which reads them) is answered, recorded, and never kept."""
    app, _clock, rt = web
    alert_id = raise_one(rt)
    monkeypatch.setattr(pagecache, "GUARDED", pagecache.GUARDED - {"alert"})
    tm = sign_in(app, "tm.fay")
    for _ in range(2):
        assert f"Alert {alert_id}" in tm.get("/inbox").text
    assert len(app.state.drp.page_cache) == 0
    assert reads(rt.engine, "tm.fay")[-4:] == [("list", None), ("listed", alert_id)] * 2


@backends
def test_a_change_to_the_organisation_as_a_page_is_made_is_not_kept_under_its_token(
        web_on: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The header's name and the navigation come from the session's check; the tokens the page
    is kept under are read in that same statement, so a change committed just after it (an
    administrator renaming her) moves them for the next request (a helper's reproducer: with
    the tokens read after the check, the old name was kept under the new token)."""
    app, _clock, rt = web_on
    raise_one(rt)
    tm = sign_in(app, "tm.fay")
    app.state.drp.page_cache.clear()
    real = pagecache.cached

    def renamed_first(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(pagecache, "cached", real)
        with rt.engine.begin() as conn:  # (in another process, as the page is being made)
            conn.execute(text("UPDATE person SET name = 'Fay Renamed' WHERE username ="
                              " 'tm.fay'"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pagecache, "cached", renamed_first)
    name = re.compile(r'<form class="drp-signout"[^>]*>.*?<span class="govuk-body-s">([^<]*)<',
                      re.DOTALL)
    assert name.findall(tm.get("/inbox").text) == ["Fay Manager"]  # (read before the change)
    assert name.findall(tm.get("/inbox").text) == ["Fay Renamed"]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_writers_of_the_organisation_and_alerts_in_either_order_do_not_deadlock(
        org: Engine, run: Run) -> None:
    """Two transactions each writing a person and an alert's data, in opposite orders, commit
    together: their deferred triggers take the two tokens' rows in one order (a helper's
    reproducer deadlocked before). Both wait on a third holding the organisation's row until
    both are at their commits, the one that would take the organisation's row first queued
    first."""
    import threading
    import time

    run("2027-03-01T09:00", lambda s: s.raise_alert("iro.ada", "R100", "Care plan not"
                                                     " updated", separate=True))
    with org.connect() as conn:
        first, second = conn.execute(text("SELECT id FROM person ORDER BY id LIMIT 2")
                                     ).scalars()
    errors: list[BaseException] = []
    pids: list[int] = []

    def writer(*statements: str) -> None:
        try:
            with org.begin() as conn:
                pids.append(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
                for statement in statements:
                    conn.execute(text(statement))
        except BaseException as exc:  # (read by the test below)
            errors.append(exc)

    holder = org.connect()
    holder.execute(text("SELECT token FROM org_version WHERE id = 1 FOR UPDATE"))
    threads = [threading.Thread(target=writer, daemon=True, args=(
                   f"UPDATE person SET name = name WHERE id = {first}",
                   "UPDATE child SET ref = ref")),
               threading.Thread(target=writer, daemon=True, args=(
                   "UPDATE alert SET summary = summary",
                   f"UPDATE person SET name = name WHERE id = {second}"))]
    try:
        with org.connect() as watcher:
            for n, thread in enumerate(threads, 1):  # the first queued first (not a sleep)
                thread.start()
                deadline = time.monotonic() + 30
                while len(pids) < n or watcher.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                        " 'Lock' AND pid = ANY(:pids)"), {"pids": list(pids)}
                        ).scalar_one() < n:
                    assert not errors, errors
                    assert time.monotonic() < deadline, "a writer never reached its commit"
                    watcher.rollback()
    finally:
        holder.commit()
        holder.close()
    for thread in threads:
        thread.join(30)
    assert not errors, errors


def test_what_drp_cannot_read_the_tables_of_is_not_kept(tmp_path: Any) -> None:
    """A `table()` without metadata and text SQL make a page unkeepable (a helper's
    reproducer: a `table()` read of the sessions was taken for a keepable read)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path}/x.db")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE web_session (id INTEGER, csrf TEXT)")
    pagecache.watch(engine)
    for statement in (sa.select(sa.column("csrf")).select_from(sa.table("web_session")),
                      sa.text("SELECT csrf FROM web_session")):
        with pagecache._made() as making, engine.connect() as conn:
            conn.execute(statement)
        assert not making.keepable, statement
    engine.dispose()
