"""Faults under load, on PostgreSQL: fifty people acting on the same alerts at once (no lost
update, no deadlock, nothing left locked), and the database server restarted in the middle of
a stream of commands (every command that said it was saved is saved, none is half-written,
the app recovers by itself and says 503 while the server is away)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from drp import db
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import Clock
from drp.errors import Conflict, DrpError
from drp.ladder.protocol import Protocol
from drp.models import Alert, Event, OutboxMessage
from drp.notify import Notifier
from drp.org import load_org
from notifications.render import Renderer

from .conftest import DATA, LONDON, PG_URL, forget_settings, pg_schema
from .support import databases, tools

NOTIFIER = Notifier(renderer=Renderer(), base_url="https://drp.example")
IROS = {"R100": "iro.ada", "R101": "iro.ben", "R200": "iro.ben"}
MANAGERS = {"R100": ["tm.fay", "hos.ivy"], "R101": ["tm.fay", "hos.ivy"],
            "R200": ["tm.gus", "hos.jon"]}


def service(session: Session, protocol: Protocol) -> AlertService:
    # The real clock: concurrent units of work take their instants as people's would.
    return AlertService(session, protocol=protocol, calendar=WorkingCalendar(),
                        clock=Clock(), tz=LONDON, notifier=NOTIFIER)


@dataclass
class Tally:
    saved: list[str] = field(default_factory=list)       # the command returned: committed
    in_doubt: list[str] = field(default_factory=list)    # the connection broke mid-command
    refused: Counter[str] = field(default_factory=Counter)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def note(self, kind: str, tag: str | None = None) -> None:
        with self.changed:
            if kind == "saved":
                self.saved.append(str(tag))
            elif kind == "in_doubt":
                self.in_doubt.append(str(tag))
            else:
                self.refused[kind] += 1
            self.changed.notify_all()

    def wait_for(self, what: str, ready: Callable[[Tally], bool], timeout: float = 60) -> None:
        """Block until `ready(self)` holds (re-checked at every note); fail, naming `what`,
        after `timeout` seconds."""
        with self.changed:
            if not self.changed.wait_for(lambda: ready(self), timeout=timeout):
                pytest.fail(f"timed out after {timeout}s waiting for {what}: saved"
                            f" {len(self.saved)}, in doubt {len(self.in_doubt)},"
                            f" refused {dict(self.refused)}")


def act(engine: Engine, protocol: Protocol, tally: Tally, rng: random.Random,
        alerts: dict[int, str], who_tag: str) -> None:
    """One person's one action on one of the alerts, whatever it is now."""
    aid = rng.choice(sorted(alerts))
    ref = alerts[aid]
    tag = f"{who_tag}-{uuid.uuid4().hex[:8]}"
    choice = rng.random()
    try:
        with db.transaction(engine) as s:
            svc = service(s, protocol)
            if choice < 0.45:
                svc.respond(aid, rng.choice(MANAGERS[ref]), f"response {tag}")
            elif choice < 0.6:
                svc.hold(aid, IROS[ref], f"hold {tag}", until=svc.today + timedelta(days=14))
            elif choice < 0.75:
                svc.resume(aid, IROS[ref], f"resume {tag}")
            elif choice < 0.85:
                svc.show(aid, rng.choice(MANAGERS[ref] + [IROS[ref]]))
                tag = ""
            else:
                svc.respond(aid, "sw.eve" if ref != "R200" else "sw.dan", f"wrong {tag}")
        if tag:
            tally.note("saved", tag)
    except Conflict:
        tally.note("conflict")
    except DrpError as exc:  # on hold already, not held, not theirs: a clear refusal
        tally.note(type(exc).__name__)
    except OperationalError:
        tally.note("in_doubt", tag)


def check_log(engine: Engine, tally: Tally) -> None:
    """Every saved command is in the log once; nothing else is, except commands in doubt;
    each alert's sequence is whole and its version counts its changes; every e-mail belongs
    to an event that was kept."""
    with Session(engine) as s:
        events = list(s.exec(select(Event).order_by(col(Event.alert_id), col(Event.seq))))
        alerts = {a.id: a for a in s.exec(select(Alert))}
        outbox_events = {int(m.key.split(":")[0]) for m in s.exec(select(OutboxMessage))}
    tagged = Counter((e.comment or "").split(" ", 1)[-1] for e in events if e.kind != "raised")
    assert all(n == 1 for n in tagged.values()), [t for t, n in tagged.items() if n > 1]
    assert set(tally.saved) <= set(tagged), set(tally.saved) - set(tagged)
    assert set(tagged) - set(tally.saved) <= set(tally.in_doubt)
    by_alert: dict[int, list[int]] = {}
    for e in events:
        by_alert.setdefault(e.alert_id, []).append(e.seq)
    for aid, seqs in by_alert.items():
        alert = alerts[aid]
        assert seqs == list(range(1, len(seqs) + 1)) and alert.last_seq == len(seqs)
        assert alert.version == len(seqs)  # 1 once raised (one INSERT), +1 per change
    kept = {e.id for e in events}
    assert outbox_events <= kept


def no_locks_left(engine: Engine, app: str) -> None:
    """None of this test's connections (application_name `app`; other tests share the
    server) waits for a lock or sits in an open transaction."""
    with engine.connect() as conn:
        mine = ("SELECT pid FROM pg_stat_activity WHERE application_name = :app"
                " AND pid <> pg_backend_pid()")
        waiting = conn.execute(text(
            f"SELECT count(*) FROM pg_locks WHERE NOT granted AND pid IN ({mine})"),
            {"app": app}).scalar_one()
        idle_in_tx = conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"
            " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"),
            {"app": app}).scalar_one()
    assert waiting == 0 and idle_in_tx == 0


def raise_alerts(engine: Engine, protocol: Protocol, n: int) -> dict[int, str]:
    refs = sorted(IROS)
    out: dict[int, str] = {}
    with db.transaction(engine) as s:
        svc = service(s, protocol)
        for i in range(n):
            ref = refs[i % len(refs)]
            alert = svc.raise_alert(IROS[ref], ref, f"Drift {i}", stage="stage1", separate=True)
            out[int(alert.id or 0)] = ref
    return out


# -- fifty people at once -------------------------------------------------------------------------


@pytest.mark.postgres
def test_fifty_people_acting_on_the_same_alerts_lose_nothing_and_leave_no_lock(
    protocol: Protocol,
) -> None:
    with pg_schema() as url:
        app = f"drp-fifty-{uuid.uuid4().hex[:6]}"
        engine = create_engine(url, pool_size=50, max_overflow=5, pool_pre_ping=True,
                               connect_args={"application_name": app})
        databases.migrate(engine, "org")  # tests/data/org.yaml, as the template has it
        alerts = raise_alerts(engine, protocol, 5)
        tally = Tally()
        start = threading.Barrier(50)

        def person(i: int) -> None:
            rng = random.Random(i)
            start.wait(timeout=60)
            for _ in range(8):
                act(engine, protocol, tally, rng, alerts, f"p{i}")

        with ThreadPoolExecutor(50) as pool:
            list(pool.map(person, range(50)))
        assert tally.in_doubt == []  # no deadlock, no broken connection
        assert len(tally.saved) > 20 and tally.refused["conflict"] > 0, tally
        check_log(engine, tally)
        no_locks_left(engine, app)
        engine.dispose()


# -- the database restarted under load --------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    url: str
    restart: Callable[[], None]
    stop: Callable[[], None]
    start: Callable[[], None]


@pytest.fixture
def private_cluster() -> Iterator[Cluster]:
    """A PostgreSQL server of this test's own (initdb in a temporary directory), so restarting
    it disturbs no other test."""
    bin_dir = _pg_bin()
    if not PG_URL:
        tools.missing("PostgreSQL", "DRP_TEST_POSTGRES_URL is not set",
                      "set it to a server's URL (.ci/run does)")
    if bin_dir is None or os.geteuid() != 0 or shutil.which("runuser") is None:
        tools.missing("PostgreSQL's initdb and pg_ctl",
                      "restarting a database server needs them, run as root through runuser",
                      "apt-get install postgresql and run as root (as on the CI machine)")
    data = Path(f"/tmp/drp-pg-{uuid.uuid4().hex[:10]}")
    data.mkdir(mode=0o700)
    shutil.chown(data, "postgres", "postgres")
    port = _free_port()

    def as_postgres(*cmd: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True,
                       capture_output=True, timeout=120)

    as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"

    def start() -> None:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(data / "log"),
                    "-o", options, "-w", "start")

    def stop() -> None:
        # "immediate": as if the server crashed; it recovers from its WAL when started.
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")

    def restart() -> None:
        stop()  # pg_ctl -w: returns once the server is down
        start()  # and once it accepts connections again

    start()
    try:
        yield Cluster(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
                      restart, stop, start)
    finally:
        try:
            stop()
        finally:
            shutil.rmtree(data, ignore_errors=True)


def test_a_database_restart_under_load_loses_no_saved_command_and_the_app_recovers(
    private_cluster: Cluster, protocol: Protocol, drp_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi.testclient import TestClient

    engine = db.make_engine(private_cluster.url)
    db.upgrade(engine)  # another server (its own version): the migrations themselves
    with db.transaction(engine) as s:
        load_org(s, DATA / "org.yaml", protocol)
    alerts = raise_alerts(engine, protocol, 6)
    tally = Tally()
    phase = {"now": "before"}
    saved_after: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def person(i: int) -> None:
        rng = random.Random(100 + i)
        try:
            while not stop.is_set():
                with tally.changed:
                    before = len(tally.saved)
                    after = phase["now"] == "after"
                act(engine, protocol, tally, rng, alerts, f"p{i}")
                with tally.changed:
                    if after and len(tally.saved) > before:
                        saved_after.append(tally.saved[-1])
                        tally.changed.notify_all()
                stop.wait(0.005)  # pacing only: nothing waits on it
        except BaseException as exc:  # re-raised below: no worker's failure vanishes
            errors.append(exc)
            with tally.changed:
                tally.changed.notify_all()

    monkeypatch.setenv("DRP_DATABASE_URL", private_cluster.url)
    from drp import runtime
    from drp.web.app import create_app

    forget_settings()
    client = TestClient(create_app(runtime.runtime()))
    assert client.get("/healthz").status_code == 200
    threads = [threading.Thread(target=person, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        # Under load before the restart: every worker has saved commands.
        tally.wait_for("20 saved commands before the restart",
                       lambda t: bool(errors) or len(t.saved) >= 20)
        private_cluster.stop()  # pg_ctl -w: the server is down when it returns
        with tally.changed:
            phase["now"] = "down"
            doubted = len(tally.in_doubt)
        down = client.get("/healthz")
        api_down = client.get("/api/alerts", headers={"Authorization": "Bearer nothing"})
        # The workers feel the outage: several commands broken by it.
        tally.wait_for("commands broken by the outage",
                       lambda t: bool(errors) or len(t.in_doubt) >= doubted + 8)
        private_cluster.start()  # pg_ctl -w: accepting connections when it returns
        with tally.changed:
            phase["now"] = "after"
        tally.wait_for("10 commands saved after the restart",
                       lambda t: bool(errors) or len(saved_after) >= 10)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not [t for t in threads if t.is_alive()], "a worker did not stop"
    if errors:
        raise errors[0]
    assert down.status_code == 503 and "nothing was read or saved" in down.text
    assert down.headers["retry-after"] == "30"
    assert api_down.status_code == 503 and "cannot be reached" in api_down.json()["detail"]
    assert client.get("/healthz").status_code == 200  # the app reconnected by itself
    assert len(saved_after) >= 10, tally  # and so did the service layer
    assert tally.in_doubt, "the restart should have broken some commands"
    check_log(engine, tally)
    engine.dispose()


def test_the_command_line_says_in_one_line_when_the_database_is_down(
    private_cluster: Cluster, tmp_path: Path,
) -> None:
    env = {**os.environ, "DRP_DATABASE_URL": private_cluster.url,
           "DRP_MAIL_DIR": str(tmp_path / "mail")}
    drp = str(Path(sys.executable).with_name("drp"))
    subprocess.run([drp, "init"], env=env, check=True, capture_output=True)
    private_cluster.stop()
    try:
        done = subprocess.run([drp, "alert", "list", "--as", "iro.ada"], env=env,
                              capture_output=True, text=True, timeout=60)
    finally:
        private_cluster.start()
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drp: ") and "database" in lines[0], lines
    assert "Traceback" not in done.stderr
