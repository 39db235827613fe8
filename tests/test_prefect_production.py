"""Prefect in production, proven: a real Prefect server (its own PREFECT_HOME; SQLite for its
own database here, PostgreSQL in production: docs/deploying.md), the process work pool,
prefect.yaml deployed and its zombie-run automation created, two workers from drp's venv, the
timescale and digest deployments at once (nothing doubled or lost), a worker killed mid-run
(marked Crashed; the next run does the work). And quick parts: a run that did not start is
retried, an unreachable server is one line, the Prefect versions agree."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from .conftest import PG_URL, ROOT, forget_settings, pg_schema, point_drp_at
from .smtp import SmtpServer, free_port
from .support import databases, prefect
from .support.prefect import BIN, PREFECT, descendants, kill_tree

LONDON = ZoneInfo("Europe/London")


# --- drp flows serve: a run that did not start is tried again at the next poll ------------
class Said(logging.Handler):
    lines: list[str]

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_run_that_does_not_start_is_retried_at_the_next_poll() -> None:
    from flows.serve import Scheduled, tick

    attempts: list[int] = []

    def flaky(**_params: object) -> None:
        attempts.append(1)
        if len(attempts) == 1:  # as Prefect's temporary server timing out on a busy machine
            raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect"
                               " API server.")

    job = Scheduled("drp-timescales", "0 7-18 * * 1-5", flaky)
    tick([job], datetime(2027, 3, 9, 6, 0, tzinfo=LONDON))
    assert job.due == (seven := datetime(2027, 3, 9, 7, 0, tzinfo=LONDON))
    said = Said(logging.ERROR)
    said.lines = []
    logging.getLogger("drp.flows").addHandler(said)
    assert tick([job], datetime(2027, 3, 9, 7, 0, 5, tzinfo=LONDON)) == []
    logging.getLogger("drp.flows").removeHandler(said)
    assert job.due == seven  # kept: not lost until 08:00
    assert said.lines == ["drp-timescales did not start; trying again at the next poll"]
    assert tick([job], datetime(2027, 3, 9, 7, 0, 25, tzinfo=LONDON)) == ["drp-timescales"]
    assert len(attempts) == 2 and job.due == datetime(2027, 3, 9, 8, 0, tzinfo=LONDON)


def test_no_answer_from_prefect_keeps_every_due_run_for_the_next_poll() -> None:
    from flows.serve import Scheduled, tick

    ran: list[str] = []
    answers = iter(["Prefect's temporary server did not start within 120 s (...)", None])
    jobs = [Scheduled(name, "0 8 * * 1-5", lambda name=name, **_kw: ran.append(name))
            for name in ("drp-timescales", "drp-digest")]
    tick(jobs, datetime(2027, 3, 9, 7, 0, tzinfo=LONDON))
    assert tick(jobs, datetime(2027, 3, 9, 8, 0, 5, tzinfo=LONDON), lambda: next(answers)) == []
    assert ran == [] and {j.due for j in jobs} == {datetime(2027, 3, 9, 8, 0, tzinfo=LONDON)}
    assert tick(jobs, datetime(2027, 3, 9, 8, 0, 25, tzinfo=LONDON),
                lambda: next(answers)) == ["drp-timescales", "drp-digest"]
    assert ran == ["drp-timescales", "drp-digest"]


# --- `drp flows run`: Prefect's API that does not answer is one line --------------------
def test_an_unreachable_prefect_server_is_one_line_saying_what_to_do() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import start_api

    url = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings({PREFECT_API_URL: url}):
        problem = start_api()
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"the Prefect server at {url} (PREFECT_API_URL) does not answer")


def test_the_temporary_servers_start_timeout_is_two_minutes_in_the_installed_prefect() -> None:
    """flows.prefect_home sets the timeout before Prefect is first imported, by the name the
    installed Prefect reads (server.ephemeral.startup_timeout_seconds)."""
    script = (
        "import sys, types\n"
        "import drp.cli\n"  # everything `drp` imports before a flow runs
        "assert not [m for m in sys.modules if m.startswith('prefect')], 'imported too soon'\n"
        "from flows import prefect_home\n"
        "prefect_home(types.SimpleNamespace(database_url='sqlite:///var/drp.db'))\n"
        "from prefect.settings import get_current_settings\n"
        "print(get_current_settings().server.ephemeral.startup_timeout_seconds)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "120"


# --- prefect.yaml, pyproject and the README agree with what installs -----------------------
def test_the_prefect_version_agrees_everywhere() -> None:
    from importlib.metadata import version

    installed = version("prefect")
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["prefect-version"] == installed
    minor = ".".join(installed.split(".")[:2])
    pyproject = (ROOT / "pyproject.toml").read_text()
    pin = re.search(r'"prefect>=([\d.]+),<([\d.]+)"', pyproject)
    assert pin and pin.group(1) == minor, "pyproject's prefect pin starts at the installed minor"
    assert f"Prefect {minor}" in (ROOT / "README.md").read_text()
    assert f"Prefect {minor}" in (ROOT / "docs" / "deploying.md").read_text()


def test_prefect_yaml_creates_the_zombie_run_automation() -> None:
    from prefect.events.schemas.automations import AutomationCore

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (automation,) = [AutomationCore.model_validate(a) for a in spec["automations"]]
    trigger: Any = automation.trigger
    assert trigger.posture == "Proactive"
    # Started and then silent (killed before its first heartbeat arrived) is a zombie too.
    assert trigger.after == {"prefect.flow-run.heartbeat", "prefect.flow-run.Running"}
    assert automation.actions[0].type == "change-flow-run-state"
    heartbeat = int(spec["definitions"]["work_pool"]["job_variables"]["env"][
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"])
    within = trigger.within.total_seconds()
    assert heartbeat >= 30 and within >= 3 * heartbeat  # a slow heartbeat is not a death


# --- the real thing -----------------------------------------------------------------------
@dataclass
class Server:
    api: str
    env: dict[str, str]
    folder: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    pending: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def ready(self) -> None:
        """The server answers and has the process work pool; prefect.yaml is being deployed
        from drp's folder and its automation created, in the background (settle waits)."""
        if self.pending or self.folder.joinpath("automation.yaml").exists():
            return
        wait_for("the Prefect server to answer", self.healthy, 180, self)
        self.cli("work-pool", "create", "drp", "--type", "process")
        # The automation as prefect.yaml has it, but firing after 45 s instead of 5 minutes
        # (the runs below send a heartbeat every 30 s, Prefect's least: QUICK).
        spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
        spec["automations"][0]["trigger"]["within"] = 45
        quick = self.folder / "automation.yaml"
        quick.write_text(yaml.safe_dump({"automations": spec["automations"]}))
        for what, args, cwd in (
                ("automation", ["automation", "create", "--from-file", str(quick)], self.folder),
                ("deploy", ["--no-prompt", "deploy", "--all"], ROOT)):
            self.pending.append((what, subprocess.Popen(
                [str(PREFECT), *args], env=self.env, cwd=cwd, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT)))

    def healthy(self) -> bool:
        return prefect.healthy(self.api)

    def settle(self) -> None:
        """Wait for the commands started in the background (the deploy, the automation)."""
        self.ready()
        while self.pending:
            what, proc = self.pending.pop()
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
            if what == "deploy":
                # timescales, digest, themes and retention (prefect.yaml)
                assert out.count(b"successfully created") == 4, out

    def start(self, *args: str, log: str, env: dict[str, str] | None = None,
              ) -> subprocess.Popen[bytes]:
        """A long-running `prefect` process in a session of its own (so it can be killed with
        its children), logging to a file in the test's folder."""
        proc = prefect.launch(list(args), env or self.env, self.folder / log, ROOT)
        self.procs.append(proc)
        return proc

    def cli(self, *args: str) -> None:
        proc = subprocess.run([str(PREFECT), "--no-prompt", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.api}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.folder.glob("*.log")))


def wait_for(what: str, check: Callable[[], Any], seconds: float, server: Server | None = None,
             every: float = 0.5) -> Any:
    """Poll `check` until it returns something true, or fail after `seconds`, with the
    server's logs (tests/support/prefect.py wait_for)."""
    return prefect.wait_for(what, check, seconds, server.logs if server else None, every)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`prefect server start` with its own PREFECT_HOME on a free port (all its services: the
    automation needs them), starting in the background (while drp's database is made):
    Server.ready waits for it. Only other processes (`prefect`, workers, `drp`) and plain
    HTTP talk to it: Prefect's process-wide workers in this process would keep sending to
    it after the module, and this process's end would wait for them (flows run here go to
    the session's server, prefect_api)."""
    folder = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    srv = Server(api, prefect.server_env(folder / "home", api), folder)
    try:
        srv.start("server", "start", "--host", "127.0.0.1", "--port", str(port),
                  log="server.log")

        yield srv
    finally:
        for proc in srv.procs:
            if proc.poll() is None:
                kill_tree(proc)


@dataclass
class Drp:
    """drp's side: its database (SQLite, or a PostgreSQL schema when DRP_TEST_POSTGRES_URL
    is set), an SMTP server on loopback, and the DRP_* environment the workers get."""

    url: str
    smtp: SmtpServer
    env: dict[str, str]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        from drp import db

        engine = db.make_engine(self.url)
        try:
            with engine.connect() as connection:
                return [tuple(r) for r in connection.execute(text(sql))]
        finally:
            engine.dispose()

    @contextmanager
    def writes_held(self) -> Iterator[None]:
        """Hold the database's write lock, so a run that starts now is Running but cannot
        commit anything until the lock goes (then it is killed in the middle)."""
        if self.url.startswith("sqlite:///"):
            with closing(sqlite3.connect(self.url.removeprefix("sqlite:///"),
                                         isolation_level=None)) as connection:
                connection.execute("BEGIN IMMEDIATE")
                yield
                connection.execute("ROLLBACK")
            return
        from sqlalchemy import text

        from drp import db

        engine = db.make_engine(self.url)
        try:
            with engine.connect() as pg, pg.begin() as txn:
                pg.execute(text("LOCK TABLE alert, outbox IN EXCLUSIVE MODE"))
                yield
                txn.rollback()
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def drp_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drp]:
    from drp import db, mail
    from drp.clock import FixedClock, parse_instant
    from drp.runtime import runtime

    tmp_path = tmp_path_factory.mktemp("drp")
    with ExitStack() as stack:
        stack.callback(forget_settings)  # last: drp's settings as they were
        monkeypatch = stack.enter_context(pytest.MonkeyPatch.context())
        url = stack.enter_context(pg_schema()) if PG_URL else f"sqlite:///{tmp_path / 'drp.db'}"
        smtp = SmtpServer()
        smtp.start()
        stack.callback(smtp.stop)
        point_drp_at(monkeypatch, tmp_path)
        settings = {"DRP_DATABASE_URL": url, "DRP_SMTP_HOST": "127.0.0.1",
                    "DRP_SMTP_PORT": str(smtp.port), "DRP_BASE_URL": "https://drp.example",
                    "DRP_MAIL_DIR": str(tmp_path / "mail"),
                    "DRP_ALLOW_FUTURE_NOW": "1"}  # the runs are as of March 2027
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        forget_settings()
        rt = runtime()
        databases.migrate(rt.engine, "org")  # tests/data/org.yaml, as the template has it

        def raise_at(when: str, *children: str) -> None:
            clock = FixedClock(parse_instant(when, rt.settings.tz))
            with db.transaction(rt.engine) as s:
                svc = rt.service(s, clock, rt.notifier())
                for child in children:
                    svc.raise_alert("iro.ada" if child == "R100" else "iro.ben", child,
                                    "Care plan drift", stage="stage1", separate=True)

        # Escalated on Monday 8 March 2027 (a digest day), and on Tuesday the 9th.
        raise_at("2027-02-26T10:00", "R100", "R101")
        raise_at("2027-03-01T10:00", "R100", "R101")
        while mail.send(rt.engine, rt.settings, FixedClock(parse_instant(
                "2027-03-01T11:00", rt.settings.tz))).sent:
            pass  # the raising notices go before the flows: the test counts the flows' mail
        smtp.recorder.received.clear()
        rt.engine.dispose()
        yield Drp(url, smtp, settings)


# A heartbeat every 30 s (Prefect's least), for the automation's 45 s in this test.
QUICK = {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}}


def run_deployments(server: Server, *runs: tuple[str, str]) -> list[str]:
    """A run of deployment NAME as of `now` for each (NAME, now), scheduled for now with QUICK
    in its job variables: what `prefect deployment run NAME/NAME --param now=...
    --job-variable env=...` does, through the server's API (a `prefect` process a run cost
    3 s of CPU); their flow run ids."""
    ids = []
    for name, now in runs:

        def create(name: str = name, now: str = now) -> Any:
            """None while the server answers 503 (its SQLite busy), as Prefect's own client
            tries again then."""
            found = httpx.get(f"{server.api}/deployments/name/{name}/{name}", timeout=30)
            if found.status_code == 503:
                return None
            found.raise_for_status()
            answer = httpx.post(f"{server.api}/deployments/{found.json()['id']}/create_flow_run",
                                json={"parameters": {"now": now}, "job_variables": QUICK},
                                timeout=30)
            if answer.status_code == 503:
                return None
            answer.raise_for_status()
            return answer.json()

        created = wait_for(f"a run of {name} to be created", create, 120, server)
        assert created["state"]["type"] == "SCHEDULED", created
        ids.append(str(created["id"]))
    return ids


def state(server: Server, run_id: str) -> str:
    return str(server.get(f"/flow_runs/{run_id}")["state"]["type"])


def finished(server: Server, *run_ids: str) -> Callable[[], bool]:
    def check() -> bool:
        states = [state(server, r) for r in run_ids]
        bad = [s for s in states if s in ("FAILED", "CRASHED", "CANCELLED")]
        assert not bad, f"runs ended {states}\n{server.logs()}"
        return all(s == "COMPLETED" for s in states)

    return check


@pytest.mark.slow
def test_a_flow_that_ran_and_failed_waits_for_its_next_time(server: Server, drp_db: Drp,
                                                            prefect_api: str) -> None:
    """Only a run that never started is retried at once: a Prefect flow that ran and failed
    returns its Failed state and waits for its next time (the next run does the rest). The
    flow runs in this process, so under the session's server (prefect_api), not this
    module's (see `server`)."""
    from prefect import flow

    from flows.serve import Scheduled, tick

    server.ready()  # drp_db (for the next test) was made while the server started

    @flow(name="drp-test-fails", persist_result=False)
    def fails() -> None:
        raise ValueError("a bug")

    job = Scheduled("fails", "0 7-18 * * 1-5", fails)
    tick([job], datetime(2027, 3, 9, 6, 0, tzinfo=LONDON))
    assert tick([job], datetime(2027, 3, 9, 7, 0, 5, tzinfo=LONDON)) == ["fails"]
    assert job.due == datetime(2027, 3, 9, 8, 0, tzinfo=LONDON)


@pytest.mark.slow
def test_two_workers_run_the_deployed_flows_and_a_killed_worker_loses_nothing(
    server: Server, drp_db: Drp,
) -> None:
    server.ready()
    worker_env = {**server.env, **drp_db.env, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    workers = [server.start("worker", "start", "--pool", "drp", "--name", name, "--limit", "1",
                            log=f"{name}.log", env=worker_env) for name in ("w1", "w2")]
    server.settle()  # prefect.yaml deployed, the automation created

    def online() -> bool:
        found = httpx.post(f"{server.api}/work_pools/drp/workers/filter", json={},
                           timeout=30).json()
        return bool(sum(w["status"] == "ONLINE" for w in found) == 2)

    wait_for("both workers online", online, 120, server)

    def escalations() -> dict[int, int]:
        rows = drp_db.rows("SELECT alert_id, count(*) FROM event"
                           " WHERE kind = 'auto_escalated' GROUP BY alert_id")
        return {int(a): int(n) for a, n in rows}

    def delivered_once() -> None:
        """Every message queued went, once: nothing pending, nothing received twice."""
        outbox = drp_db.rows("SELECT id, status FROM outbox")
        assert {status for _, status in outbox} <= {"sent"}, outbox
        ids = [m.message["Message-ID"].split(".")[1] for m in drp_db.smtp.recorder.received]
        assert len(ids) == len(set(ids)), "a message was sent twice"
        sent = drp_db.rows("SELECT id FROM outbox WHERE sent_at IS NOT NULL")
        flows_sent = {str(i) for (i,) in sent} - before
        assert set(ids) == flows_sent

    before = {str(i) for (i,) in drp_db.rows("SELECT id FROM outbox")}

    # Monday 8 March 2027 08:00: the timescale and digest runs at once, one on each worker.
    monday = "2027-03-08T08:00"
    runs = run_deployments(server, ("drp-timescales", monday), ("drp-digest", monday))
    wait_for("both runs to complete", finished(server, *runs), 300, server)
    on = {server.get(f"/flow_runs/{r}")["infrastructure_pid"].split(":")[-1] for r in runs}
    assert len(on) == 2  # two processes, each from its own worker
    assert escalations() == {1: 1, 2: 1}
    digests = [m for m in drp_db.smtp.recorder.received
               if m.message["X-drp-Message"] == "digest"]
    assert sorted(m.rcpt[0].split("@")[0] for m in digests) == ["cat", "hal", "ivy", "jon"]
    delivered_once()

    # Tuesday: a worker dies while its run is Running (held at the database's write lock,
    # so nothing is committed yet); the next run does all the work, once.
    tuesday = "2027-03-09T08:00"
    with drp_db.writes_held():
        (doomed,) = run_deployments(server, ("drp-timescales", tuesday))
        wait_for("the run to be Running", lambda: state(server, doomed) == "RUNNING", 240,
                 server)
        pid = int(server.get(f"/flow_runs/{doomed}")["infrastructure_pid"].split(":")[-1])
        (victim,) = [w for w in workers if pid in descendants(w.pid)]
        kill_tree(victim)
    assert escalations() == {1: 1, 2: 1}
    (rerun,) = run_deployments(server, ("drp-timescales", tuesday))
    # Meanwhile `drp flows run` against the long-lived server (PREFECT_API_URL, as the README
    # advises for production; no temporary server): a third run as of Tuesday, at once.
    again = subprocess.Popen([str(BIN / "drp"), "flows", "run", "timescales", "--now", tuesday],
                             env=worker_env, cwd=server.folder, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for("the next run to complete", finished(server, rerun), 300, server)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert out.startswith("Timescales as of 2027-03-09: 0 resumed, ") and "temporary" not in err
    assert escalations() == {1: 1, 2: 1, 3: 1, 4: 1}  # once each, whichever did them
    delivered_once()
    # The killed run does not stay Running for good: the automation from prefect.yaml marks
    # it Crashed once its heartbeats stop.
    wait_for("the killed run to be marked Crashed", lambda: state(server, doomed) == "CRASHED",
             180, server, every=2)
