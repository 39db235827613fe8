"""Issue 15, sign-in and credentials: nobody elsewhere can lock a person out (throttling by
username and client address, progressive, recorded before the check so parallel guesses cannot
pass it; `drp user unlock`), API tokens expire and can be listed and revoked, a new password or
leaving the organisation ends every session and token, each credential act is audited, and no
route handler runs blocking work on the event loop. Real parts throughout: the database
(SQLite and PostgreSQL where it matters), argon2, the app through TestClient, `drp` itself."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import db
from drp.errors import BadValue
from drp.models import AccessLog, ApiToken, Person
from drp.org import load_org
from drp.settings import Settings
from drp.web.auth import SESSION_COOKIE, Auth, set_password

from .conftest import DATA, TEST_PASSWORD, backends
from .support.cli import Cli

BASE = "https://testserver"
PASSWORD = "a-good-long-password"
NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def auth_on(engine: Engine, **settings: Any) -> Auth:
    return Auth(engine, Settings(**settings))


def outcome(auth: Auth, username: str, client: str, password: str = "wrong-password-1",
            now: datetime = NOW) -> str:
    """'in', 'wrong' (checked, refused) or 'locked' (refused unchecked)."""
    try:
        auth.sign_in(username, password, now, client=client)
    except BadValue as exc:
        return "locked" if "too many" in exc.message else "wrong"
    return "in"


def lock_message(auth: Auth, username: str, client: str, now: datetime = NOW) -> str:
    with pytest.raises(BadValue, match="too many") as refused:
        auth.sign_in(username, PASSWORD, now, client=client)
    return refused.value.message


# -- throttling ------------------------------------------------------------------------------
@backends
def test_parallel_guesses_cannot_pass_the_limit(org: Engine) -> None:
    """Twelve wrong passwords at once for one username from one address: at most
    login_max_failures are checked (the attempt is recorded before the count)."""
    auth = auth_on(org)
    most = auth.settings.login_max_failures
    barrier = threading.Barrier(12)
    results: list[str] = []

    def guess() -> None:
        barrier.wait()
        results.append(outcome(auth, "iro.ada", "198.51.100.7"))

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 12
    assert results.count("wrong") <= most, results
    assert results.count("locked") >= 12 - most


def test_an_attacker_elsewhere_cannot_lock_the_person_out(web: Any) -> None:
    """Wrong passwords for iro.ada from another address lock that address out for iro.ada,
    not iro.ada from theirs (through the app: the client address is the request's)."""
    app, _clock, rt = web
    attacker = TestClient(app, base_url=BASE, client=("203.0.113.9", 50000))
    for _ in range(rt.settings.login_max_failures):
        assert login(attacker, "iro.ada", "wrong-password-1").status_code == 400
    r = login(attacker, "iro.ada", TEST_PASSWORD)
    assert r.status_code == 400 and "too many failed attempts" in r.text
    person = TestClient(app, base_url=BASE, client=("10.1.2.3", 50000))
    r = login(person, "iro.ada", TEST_PASSWORD)
    assert r.status_code == 303 and r.cookies.get(SESSION_COOKIE)


def test_the_wait_grows_with_repeated_failures(org: Engine) -> None:
    """N failures in L minutes: wait out L; N more within 4L: wait until the first N leave
    the longer period (progressive); a success clears the pair's count."""
    auth = auth_on(org, login_max_failures=3, login_lockout_minutes=15)
    set_password(org, "iro.ada", PASSWORD, NOW)
    where, now = "198.51.100.20", NOW
    for _ in range(3):
        assert outcome(auth, "iro.ada", where, now=now) == "wrong"
    assert "wait 15 minutes" in lock_message(auth, "iro.ada", where, now)
    now += timedelta(minutes=15, seconds=1)
    for _ in range(3):
        assert outcome(auth, "iro.ada", where, now=now) == "wrong"
    message = lock_message(auth, "iro.ada", where, now + timedelta(minutes=15, seconds=1))
    assert "wait 30 minutes" in message, message  # the first three leave the hour at +60
    now += timedelta(hours=1)
    assert outcome(auth, "iro.ada", where, PASSWORD, now=now) == "in"
    for _ in range(3):  # the success cleared the count: three more before a wait
        assert outcome(auth, "iro.ada", where, now=now) == "wrong"
    assert "too many" in lock_message(auth, "iro.ada", where, now)


def test_one_address_trying_many_usernames_is_held(org: Engine) -> None:
    """Password spraying from one address stops at login_client_max_failures; another
    address is not held by it."""
    auth = auth_on(org, login_client_max_failures=10)
    set_password(org, "iro.ada", PASSWORD, NOW)
    for i in range(10):
        assert outcome(auth, f"someone.{i}", "198.51.100.30") == "wrong"
    with pytest.raises(BadValue, match="from this address"):
        auth.sign_in("iro.ada", PASSWORD, NOW, client="198.51.100.30")
    assert outcome(auth, "iro.ada", "198.51.100.31", PASSWORD) == "in"


def test_spraying_from_a_shared_address_does_not_lock_out_the_people_who_use_it(
        org: Engine) -> None:
    """Many people behind one address (a council's NAT, a proxy): spraying from it holds
    strangers and newcomers there, but not a person who signed in from it lately; an
    administrator clears the address with `drp user unlock --client` (seen failing: the
    address cap held iro.ada too, and unlocking her username cleared nothing of it)."""
    auth = auth_on(org, login_client_max_failures=10)
    set_password(org, "iro.ada", PASSWORD, NOW)
    set_password(org, "iro.ben", PASSWORD, NOW)
    office = "192.0.2.10"
    assert outcome(auth, "iro.ada", office, PASSWORD) == "in"  # she works from here
    for i in range(12):
        assert outcome(auth, f"someone.{i}", office) in ("wrong", "locked")
    assert outcome(auth, "iro.ada", office, PASSWORD) == "in"
    assert "from this address" in lock_message(auth, "iro.ben", office)  # new here: held
    assert auth.unlock_client(office, NOW) >= 10
    assert outcome(auth, "iro.ben", office, PASSWORD) == "in"


def test_a_distributed_attack_holds_strange_addresses_not_the_persons_own(org: Engine) -> None:
    """Failures for one username from many addresses stop at login_account_max_failures a day
    for addresses it never signed in from; the address the person signs in from still works."""
    auth = auth_on(org, login_account_max_failures=10)
    set_password(org, "iro.ada", PASSWORD, NOW)
    assert outcome(auth, "iro.ada", "10.9.9.9", PASSWORD) == "in"  # the person's own
    for i in range(10):
        assert outcome(auth, "iro.ada", f"203.0.113.{i}") == "wrong"
    assert "too many failed attempts" in lock_message(auth, "iro.ada", "203.0.113.200")
    assert outcome(auth, "iro.ada", "10.9.9.9", PASSWORD) == "in"


def test_drp_user_unlock_clears_a_lock_and_is_audited(cli: Cli) -> None:
    engine = cli_engine(cli)
    auth = auth_on(engine)
    for _ in range(auth.settings.login_max_failures):
        assert outcome(auth, "iro.ada", "198.51.100.40") == "wrong"
    lock_message(auth, "iro.ada", "198.51.100.40")
    r = cli("user", "unlock", "iro.ada")
    assert f"{auth.settings.login_max_failures} failed sign-in(s)" in r.stdout
    # iro.ada has no password in the CLI's database: checked and wrong, not locked.
    assert outcome(auth, "iro.ada", "198.51.100.40") == "wrong"
    assert cli("user", "unlock", "no.such.person", code=1).stderr.count("\n") == 1
    assert "one of the two" in cli("user", "unlock", code=1).stderr
    assert "one of the two" in cli("user", "unlock", "iro.ada", "--client", "x", code=1).stderr
    for _ in range(3):
        assert outcome(auth, "someone.else", "198.51.100.41") == "wrong"
    assert "3 failed sign-in(s)" in cli("user", "unlock", "--client", "198.51.100.41").stdout
    row, by_address = audit_rows(engine, "unlocked")
    assert row.channel == "cli" and row.os_user and "iro.ada" in (row.detail or "")
    assert "198.51.100.41" in (by_address.detail or "") and by_address.channel == "cli"
    engine.dispose()


# -- API tokens and the person's credential epoch -------------------------------------------
def test_api_tokens_expire_are_listed_and_revoked(cli: Cli) -> None:
    engine = cli_engine(cli)
    for days in ("0", "367", "-5"):
        r = cli("user", "token", "iro.ada", "--expires", days, code=1)
        assert "--expires" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    token = cli("user", "token", "iro.ada", "--label", "case system").stdout.strip()
    short = cli("user", "token", "tm.fay", "--expires", "1").stdout.strip()
    listed = {t["label"]: t for t in json.loads(cli("user", "tokens", "--json").stdout)}
    made = datetime.fromisoformat(listed["case system"]["created"])
    assert datetime.fromisoformat(listed["case system"]["expires"]) - made == timedelta(days=90)
    assert listed["case system"]["works"] and listed["case system"]["revoked"] is None
    assert token not in cli("user", "tokens").stdout  # never the token itself
    assert [t["username"] for t in json.loads(cli("user", "tokens", "tm.fay", "--json").stdout)
            ] == ["tm.fay"]
    auth = auth_on(engine)
    assert auth.api_person(short) is not None
    assert auth.api_person(short, datetime.now(UTC) + timedelta(days=1, minutes=1)) is None
    assert auth.api_person(token) is not None
    cli("user", "token", "--revoke", str(listed["case system"]["id"]))
    assert auth.api_person(token) is None
    after = {t["label"]: t for t in json.loads(cli("user", "tokens", "--json").stdout)}
    assert after["case system"]["revoked"] and not after["case system"]["works"]
    assert cli("user", "tokens", "--revoke", "999", code=1).stderr.count("\n") == 1
    issued, revoked = audit_rows(engine, "token_issued"), audit_rows(engine, "token_revoked")
    assert len(issued) == 2 and len(revoked) == 1
    for row in issued + revoked:
        assert token not in (row.detail or "") and short not in (row.detail or "")
        assert row.channel == "cli" and row.os_user
    engine.dispose()


def test_expired_and_revoked_tokens_are_refused_with_401(web: Any) -> None:
    app, _clock, rt = web
    auth = Auth(rt.engine, rt.settings)
    long_ago = datetime.now(UTC) - timedelta(days=91)
    expired = auth.new_api_token("iro.ada", "old", long_ago)
    live = auth.new_api_token("iro.ada", "live", datetime.now(UTC))
    c = TestClient(app, base_url=BASE)

    def status(token: str) -> int:
        return int(c.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code)

    assert status(live) == 200 and status(expired) == 401
    with Session(rt.engine) as s:
        row = s.exec(select(ApiToken).where(ApiToken.label == "live")).one()
        assert row.last_used_at is not None  # the listing can say when it was last used
    assert row.id is not None
    auth.revoke_token(row.id, datetime.now(UTC))
    assert status(live) == 401


def test_a_new_password_ends_every_session_and_token(web: Any) -> None:
    app, clock, rt = web
    auth = Auth(rt.engine, rt.settings)
    token = auth.new_api_token("iro.ada", "api", datetime.now(UTC))
    browser = signed_in(app, "iro.ada")
    assert browser.get("/my-alerts", follow_redirects=False).status_code == 200
    set_password(rt.engine, "iro.ada", PASSWORD, clock.now())
    assert browser.get("/my-alerts", follow_redirects=False).status_code == 303
    assert TestClient(app, base_url=BASE).get(
        "/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    [row] = audit_rows(rt.engine, "password_set")
    assert PASSWORD not in (row.detail or "") and "1 API token" in (row.detail or "")


def test_someone_removed_and_added_back_gets_no_old_session_or_token(web: Any,
                                                                     tmp_path: Path) -> None:
    app, _clock, rt = web
    token = Auth(rt.engine, rt.settings).new_api_token("admin.max", "api", datetime.now(UTC))
    browser = signed_in(app, "admin.max")
    assert browser.get("/admin", follow_redirects=False).status_code == 200
    without = tmp_path / "without.yaml"
    without.write_text(remove_person((DATA / "org.yaml").read_text(), "admin.max"))
    for path in (without, DATA / "org.yaml"):  # removed, then added back
        with db.transaction(rt.engine) as s:
            load_org(s, path, rt.protocol)
    with Session(rt.engine) as s:
        assert s.exec(select(Person).where(Person.username == "admin.max")).one().active
    assert browser.get("/admin", follow_redirects=False).status_code == 303
    assert TestClient(app, base_url=BASE).get(
        "/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert signed_in(app, "admin.max").get("/admin", follow_redirects=False).status_code == 200


# -- the event loop --------------------------------------------------------------------------
def test_no_route_handler_blocks_the_event_loop(web: Any) -> None:
    """A coroutine handler runs on the event loop: only those that hand their blocking work
    to threads may be one (the load check, tests/test_security_load.py, measures it)."""
    offloading = {"login", "sso", "sso_callback", "reset_password"}
    handlers = list(endpoints(web[0].routes))
    assert len(handlers) > 40 and "load_organisation" in {h.__name__ for h in handlers}
    coroutines = {h.__name__ for h in handlers if inspect.iscoroutinefunction(h)}
    assert coroutines <= offloading, coroutines - offloading


def test_no_exception_handler_reads_the_database_on_the_event_loop(web: Any) -> None:
    """Starlette awaits a coroutine exception handler on the event loop and runs a plain `def`
    one on its thread pool. The pages that answer a refusal, a missing page, a sign-in needed
    and a refused input are asked for, signed in and not, with every database statement
    watched: none runs on the loop's thread. And only handlers that touch nothing but the
    request may be coroutines."""
    from sqlalchemy import event

    app, _clock, rt = web
    pure = {"_invalid", "_sign_in", "_database_down"}  # no database, no file, no network
    handlers = {getattr(h, "__name__", repr(h)): h for h in app.exception_handlers.values()}
    assert {"_refused", "_missing"} <= set(handlers)
    coroutines = {name for name, h in handlers.items() if inspect.iscoroutinefunction(h)
                  and h.__module__ != "fastapi.exception_handlers"}  # FastAPI's: the request
    assert coroutines <= pure, coroutines - pure

    on_loop: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread: no loop running here
        on_loop.append(statement[:80])

    event.listen(rt.engine, "before_cursor_execute", watch)
    try:
        ada, anyone = signed_in(app, "iro.ada"), TestClient(app, base_url=BASE)
        for client in (ada, anyone):
            assert client.get("/no-such-page").status_code == 404  # _missing
            assert client.get("/api/no-such-thing").status_code in (401, 404)
        assert ada.get("/alerts/999999").status_code == 404  # NotFound: _refused
        assert ada.get("/admin").status_code == 403  # NotPermitted: _refused
        assert anyone.get("/alerts", follow_redirects=False).status_code == 303  # _sign_in
        assert anyone.get("/healthz").status_code == 200
    finally:
        event.remove(rt.engine, "before_cursor_execute", watch)
    assert not on_loop, on_loop


def endpoints(routes: Any) -> Any:
    """Every route handler of the app, through the routers it includes (FastAPI keeps an
    included router whole, as its `original_router`)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.endpoint
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from endpoints(inner.routes)


def test_sign_in_checks_passwords_off_the_event_loop(web: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """While a sign-in's password check (argon2, ~0.4 s) runs, the loop answers others."""
    app, _clock, _rt = web
    import httpx

    from drp.web import auth

    # drp's own decoy, at production cost (the tests' processes check it at theirs)
    monkeypatch.setattr(auth, "_DUMMY_HASH", auth._hasher.hash("drp-dummy-password"))

    async def main() -> tuple[float, float]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            page = await c.get("/login")
            found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert found
            data = {"username": "nobody.1", "password": "wrong-password-1",
                    "csrf_token": found.group(1)}
            loop = asyncio.get_running_loop()
            start = last = loop.time()
            signing = asyncio.ensure_future(c.post("/login", data=data))
            longest = 0.0
            while not signing.done():  # the loop keeps turning while the check runs
                await asyncio.sleep(0.01)
                longest, last = max(longest, loop.time() - last), loop.time()
            await signing
            return loop.time() - start, longest

    def one_check() -> float:  # its own time on this machine now (slower under load)
        start = time.perf_counter()
        with contextlib.suppress(Exception):
            auth._hasher.verify(auth._DUMMY_HASH, "wrong-password-1")
        return time.perf_counter() - start

    before = one_check()
    took, longest = asyncio.run(main())
    after = one_check()
    # The sign-in ran a check (it took at least half of the quicker one: a fixed 0.1 s failed
    # on a host whose check took 0.08 s); on the loop, the check would stop the loop for its
    # whole length: one turn as long as a check.
    assert took > min(before, after) / 2, (took, before, after)
    assert longest < max(before, after) / 2, (longest, before, after)


# -- helpers ---------------------------------------------------------------------------------
def cli_engine(cli: Cli) -> Engine:
    return db.make_engine(cli.env["DRP_DATABASE_URL"])


def audit_rows(engine: Engine, action: str) -> list[AccessLog]:
    with Session(engine) as s:
        return list(s.exec(select(AccessLog).where(AccessLog.action == action)
                           .order_by(col(AccessLog.id))))


def login(client: TestClient, username: str, password: str) -> Any:
    page = client.get("/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": found.group(1), "next": "/"},
                       follow_redirects=False)


def signed_in(app: Any, username: str) -> TestClient:
    client = TestClient(app, base_url=BASE)
    assert login(client, username, TEST_PASSWORD).status_code == 303
    return client


def remove_person(text: str, username: str) -> str:
    """The organisation file without `username` (someone the file names only in people)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if f"{{username: {username}," not in line)


def test_drp_user_password_revokes_tokens_and_is_audited(cli: Cli,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    token = cli("user", "token", "iro.ada").stdout.strip()
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    r = cli("user", "password", "iro.ada", "--password-stdin")
    assert "1 API token(s) revoked" in r.stdout
    engine = cli_engine(cli)
    assert auth_on(engine).api_person(token) is None
    [row] = audit_rows(engine, "password_set")
    assert row.channel == "cli" and row.os_user and PASSWORD not in (row.detail or "")
    engine.dispose()


@backends
def test_a_live_session_is_read_with_its_person_and_roles_in_one_statement(org: Engine) -> None:
    """Every page checks its session: the session, its person and their roles are one
    statement (and no write while the session was seen in the last minute); a person with
    two roles has both."""
    from sqlalchemy import event

    from drp.models import PersonRole

    auth = auth_on(org)
    with db.transaction(org) as s:
        ada = s.exec(select(Person).where(Person.username == "iro.ada")).one()
        s.add(PersonRole(person_id=ada.id, role="iro_manager"))
        ada_id = ada.id
    assert ada_id is not None
    token, _ = auth.start_session(ada_id, NOW)
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(org, "before_cursor_execute", count)
    try:
        found = auth.live_session(token, NOW + timedelta(seconds=30))
    finally:
        event.remove(org, "before_cursor_execute", count)
    assert found is not None
    _web, person, roles, _tokens = found
    assert (person.username, roles) == ("iro.ada", frozenset({"iro", "iro_manager"}))
    assert len(seen) == 1, seen
    # Revoked, or its person's credentials moved on: no session.
    with db.transaction(org) as s:
        person = s.get(Person, ada_id)
        assert person is not None
        person.credential_epoch = (person.credential_epoch or 0) + 1
        s.add(person)
    assert auth.live_session(token, NOW + timedelta(seconds=40)) is None
    assert auth.live_session(token, NOW + timedelta(seconds=50)) is None  # (now revoked)
