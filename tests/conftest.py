"""Fixtures: real databases (SQLite files and, where DRP_TEST_POSTGRES_URL names a server,
PostgreSQL in a schema of its own per test), the organisation, and a service factory that runs
one unit of work as of a given instant."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from drp import db
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.ladder.protocol import Protocol, load_protocol
from drp.org import load_org
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy

from .support import classifier, databases, tools

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
LONDON = ZoneInfo("Europe/London")
PG_URL = os.environ.get("DRP_TEST_POSTGRES_URL")
NO_PG = "DRP_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped (.ci/run sets it)"
DEFAULT_PROTOCOL = CONFIG_DIR / "protocol.yaml"

os.environ["DRP_ALLOW_FUTURE_NOW"] = "1"  # tests act as of 2027: --now ahead is allowed
databases.install_no_fsync()  # SQLite commits without fsync in tests (tests/support/databases)
classifier.train_once_per_process()  # the same theme model, trained once (tests/support/classifier)
databases.cheap_decoy_hash()  # unknown usernames checked at the tests' cost (tests/support/databases)
databases.share_sqlite_compiled_sql()  # SQL compiled once a process (tests/support/databases)

# Whole files (and the tests using the session's Prefect server) that take long: `make
# test-quick` leaves them out (-m "not slow"); `make test` and CI run everything.
SLOW_FILES = {"test_soak.py", "test_faults.py", "test_load.py", "test_browser.py",
              "test_browser_a11y.py", "test_flows.py", "test_concurrency.py",
              "test_api_schema.py"}
SLOW_TESTS = {"TestAlertLadder"}  # the long hypothesis state machine


# `make test` runs with `-n 3 --dist loadgroup --no-loadscope-reorder`: each unit below goes
# whole to one worker, in the order collected. A unit is a file (its tests may share a module
# fixture), except in SPLIT files, whose tests share nothing but the process: there each test
# is a unit, so the workers can share a long file. Sending the longest units first keeps
# one worker from starting a long unit when the other is nearly done (xdist's own order, most
# tests first, started the soak last: 575 s where the work was 461 s a worker). Measured with
# --durations=0, one file at a time on an idle machine; scheduling only.
SPLIT = {"test_soak.py", "test_simulate.py", "test_properties.py", "test_seeds.py",
         "test_browser_a11y.py"}
LONGEST_FIRST = (
    "test_web_routes.py", "test_prefect_production.py", "test_cli_flows.py",
    "test_browser.py", "test_faults.py", "test_properties.py::TestAlertLadder",
    "test_soak.py::test_a_simulated_year_through_the_prefect_flows", "test_flows.py",
    "test_soak.py::test_a_simulated_year_keeps_every_invariant", "test_api_schema.py",
    "test_security_load.py", "test_cli_matrix.py", "test_security_auth.py",
    "test_outbox_delivery.py", "test_notifications.py", "test_cover_transfer.py",
    "test_cli.py", "test_security_input.py", "test_simulate.py::test_cambridgeshire_scaled",
    "test_reports.py", "test_simulate.py::test_same_seed_same_year",
    "test_simulate.py::test_peterborough_full_year", "test_simulate.py::test_manchester_scaled",
    "test_cli_mail.py", "test_seeds.py::test_manchester_2020_21_like_for_like",
    "test_seeds.py::test_cambridgeshire_2020_21",
    "test_browser_a11y.py::test_every_page_those_who_oversee_reach_passes_axe_and_fits_375_px",
    "test_browser_a11y.py::test_every_page_those_who_act_reach_passes_axe_and_fits_375_px",
)


def unit(item: pytest.Item) -> str:
    """The file, or in a SPLIT file the test (its parameters together)."""
    name = item.path.name
    if name not in SPLIT:
        return name
    return f"{name}::{item.nodeid.split('::', 1)[1].split('[')[0]}"


def _longest_first(item: pytest.Item) -> int:
    found = unit(item)
    for i, known in enumerate(LONGEST_FIRST):
        if found == known or found.startswith(known + "::"):
            return i
    return len(LONGEST_FIRST)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_longest_first)  # stable: each file's tests keep their order
    for item in items:
        item.add_marker(pytest.mark.xdist_group(unit(item)))
        if (item.path.name in SLOW_FILES or "prefect_server" in item.fixturenames
                or any(name in item.nodeid for name in SLOW_TESTS)):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under `--dist loadgroup` each test's id reaches the scheduler ending with its unit
    (xdist's only channel for the group). Where a pytest and pytest-xdist pair drops it, every
    test is dealt out alone, silently: module fixtures (a Prefect server, a browser) made on
    both workers and the suite far slower. Stop the run instead, saying so."""
    if node.config.getoption("dist") != "loadgroup":
        return
    lost = [i for i in ids if "@" not in i]
    if lost:
        pytest.exit(f"pytest-xdist's --dist loadgroup is not grouping ({lost[0]} has no @unit):"
                    " this pytest and pytest-xdist do not work together (pytest-xdist issue"
                    " 1386); install the versions pyproject.toml pins: pip install -e '.[dev]'",
                    returncode=1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """DRP_TEST_STRICT=1 (CI): a skip for a tool CI promises is a failure, whoever raised it."""
    report = yield
    if tools.STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(
            report.longrepr)
        if tools.PROMISED.search(str(reason)):
            report.outcome = "failed"
            report.longrepr = (f"DRP_TEST_STRICT=1: CI promises this test's tools, but it"
                               f" skipped: {reason}")
    return report

backends = pytest.mark.parametrize(
    "db_url",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)


@contextmanager
def pg_schema(pooled: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL schema; the URL routes every connection to it. `pooled`: for a test
    that fills it (databases.pg_fill), one used before and put back as the migrations leave
    it, where there is one (tests/support/pgpool.py)."""
    if not PG_URL:
        tools.missing("PostgreSQL", "DRP_TEST_POSTGRES_URL is not set",
                      "set it to a server's URL, e.g."
                      " postgresql+psycopg://postgres@127.0.0.1:5432/test (.ci/run does)")
    if pooled:
        with databases.pg_pooled_schema(PG_URL) as url:
            yield url
        return
    with db.temporary_schema(PG_URL) as url:
        yield databases.pg_without_flush_wait(url)


# The fixtures that always fill their database (databases.migrate): a PostgreSQL schema for
# them may come from the pool.
FILLED_BY = {"engine", "org", "web_on"}


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind = getattr(request, "param", "sqlite")
    if kind == "postgres":
        with pg_schema(pooled=bool(FILLED_BY & set(request.fixturenames))) as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'drp.db'}"


@pytest.fixture
def engine(db_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The newest schema: on SQLite a copy of the file the migrations made once per process
    (with tests/data/org.yaml in it when the test asks for `org`), on PostgreSQL the same made
    by replaying what the migrations sent (tests/support/databases.py)."""
    path = databases.sqlite_path(db_url)
    with_org = "org" in request.fixturenames
    if path is not None and databases.unmade(path):
        databases.copy_template("org" if with_org else "schema", path)
        eng = db.make_engine(db_url)
    else:
        eng = db.make_engine(db_url)
        databases.migrate(eng, "org" if with_org else "schema")
    if with_org:
        _FROM_ORG_TEMPLATE.add(id(eng))
    yield eng
    _FROM_ORG_TEMPLATE.discard(id(eng))
    eng.dispose()


_FROM_ORG_TEMPLATE: set[int] = set()  # engines whose database already has tests/data/org.yaml


@pytest.fixture
def protocol() -> Protocol:
    return load_protocol(CONFIG_DIR / "protocol.yaml")


@pytest.fixture
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


@pytest.fixture
def org(engine: Engine, protocol: Protocol) -> Engine:
    if id(engine) not in _FROM_ORG_TEMPLATE:
        with db.transaction(engine) as session:
            load_org(session, DATA / "org.yaml", protocol)
    return engine


Run = Callable[..., Any]


@pytest.fixture
def run(org: Engine, protocol: Protocol, calendar: WorkingCalendar) -> Run:
    """run("2026-03-02T09:00", lambda s: s.raise_alert(...)): one unit of work as of then."""

    def _run(when: str | datetime, fn: Callable[[AlertService], Any]) -> Any:
        instant = parse_instant(when, LONDON) if isinstance(when, str) else when
        with db.transaction(org) as session:
            svc = AlertService(
                session, protocol=protocol, calendar=calendar, clock=FixedClock(instant),
                tz=LONDON, taxonomy=load_taxonomy(CONFIG_DIR / "themes.yaml"),
            )
            return fn(svc)

    return _run


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or a run without workers), before any test: the PostgreSQL test
    database's catalogue compacted (this machine's server runs without autovacuum;
    tests/support/pgpool.py)."""
    if PG_URL and not hasattr(config, "workerinput"):
        from .support import pgpool

        why = pgpool.compact_catalogue(PG_URL)
        if why:
            sys.stderr.write(f"the PostgreSQL catalogue was not compacted ({why});"
                             " the PostgreSQL tests may run slower\n")


@pytest.fixture(scope="session")
def prefect_server(pytestconfig: pytest.Config) -> Iterator[str]:
    """The API URL of the one Prefect server the whole session shares (both xdist workers):
    the first test that asks starts it (tests/support/prefect.py), pytest_unconfigure stops
    it. At this process's end, what its Prefect events and log workers still hold is sent,
    with a bound (Prefect's own drain at exit has none)."""
    import warnings

    from .support import prefect

    yield prefect.shared_api(prefect.session_root(pytestconfig), prefect.owner_pid(pytestconfig))
    left = prefect.drain_prefect()
    if left:
        warnings.warn(f"Prefect's workers in this test process: {left}", stacklevel=1)


@pytest.fixture
def prefect_api(prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The flows this test runs in this process, and the commands it runs, use the session's
    Prefect server: PREFECT_API_URL in the environment (for commands and drp) and in Prefect's
    settings (read when Prefect was first imported), both as they were after the test."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    with temporary_settings({PREFECT_API_URL: prefect_server}):
        yield prefect_server


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller (not an xdist worker), at the very end: the shared Prefect server goes,
    with its process tree, after every worker has exited."""
    if not hasattr(config, "workerinput"):
        from .support import prefect

        prefect.stop_shared(config)


def point_drp_at(mp: pytest.MonkeyPatch, folder: Path) -> None:
    """drp's settings (read once per process, then cached) pointed at a fresh SQLite database
    and mail folder in `folder`, whatever DRP_* the shell had; call forget_settings() after."""
    for key in [k for k in os.environ if k.startswith("DRP_") and k != "DRP_TEST_POSTGRES_URL"]:
        mp.delenv(key)
    mp.setenv("DRP_DATABASE_URL", f"sqlite:///{folder / 'drp.db'}")
    mp.setenv("DRP_MAIL_DIR", str(folder / "mail"))
    mp.setenv("DRP_BASE_URL", "https://drp.example")
    mp.setenv("DRP_ALLOW_FUTURE_NOW", "1")  # as for the session: tests act as of 2027
    forget_settings()


def forget_settings() -> None:
    from drp import runtime, settings

    settings.get_settings.cache_clear()
    runtime.runtime.cache_clear()


@pytest.fixture
def drp_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point drp's settings (read once per process) at a fresh SQLite database of this test."""
    point_drp_at(monkeypatch, tmp_path)
    yield tmp_path
    forget_settings()


@pytest.fixture
def web_on(db_url: str, drp_env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The `web` fixture's app on the `backends` database (SQLite, or a PostgreSQL schema)."""
    from drp import runtime as runtime_module
    from drp.web.app import create_app

    monkeypatch.setenv("DRP_DATABASE_URL", db_url)
    forget_settings()
    rt = runtime_module.runtime()
    prepare(rt)
    clock = MovableClock()
    yield create_app(rt, clock), clock, rt
    rt.engine.dispose()


TEST_PASSWORD = "test-password-123"


class MovableClock:
    """A clock the test moves (for idle timeouts and lock-outs)."""

    def __init__(self, when: str = "2027-03-01T09:00") -> None:
        self.instant = parse_instant(when, LONDON)

    def now(self) -> datetime:
        return self.instant

    def move(self, **delta: float) -> None:
        from datetime import timedelta

        self.instant += timedelta(**delta)


@pytest.fixture
def web(drp_env: Path) -> Any:
    """The web app on a fresh SQLite database with tests/data/org.yaml, every person's
    password TEST_PASSWORD, and a movable clock: returns (app, clock, runtime)."""
    from drp import runtime as runtime_module
    from drp.web.app import create_app

    rt = runtime_module.runtime()
    prepare(rt)
    clock = MovableClock()
    return create_app(rt, clock), clock, rt


def prepare(rt: Any) -> None:
    """Bring the runtime's database to the newest schema, load tests/data/org.yaml and give
    every person the password TEST_PASSWORD (a cheap hash: tests/support/databases.py)."""
    from sqlmodel import select

    from drp.models import Person

    path = databases.sqlite_path(str(rt.engine.url))
    default = Path(rt.settings.protocol).resolve() == DEFAULT_PROTOCOL.resolve()
    if path is not None and databases.unmade(path) and default:
        rt.engine.dispose()
        databases.copy_template("people", path)  # the same rows, made once per process
        return
    if path is None and default:
        databases.migrate(rt.engine, "people")  # PostgreSQL: the same rows, replayed
        return
    db.upgrade(rt.engine)
    with db.transaction(rt.engine) as s:
        load_org(s, DATA / "org.yaml", rt.protocol)
        hashed = databases.cheap_password_hash(TEST_PASSWORD)
        for person in s.exec(select(Person)):
            person.password_hash = hashed
            s.add(person)


def sign_in(app: Any, username: str, password: str = TEST_PASSWORD) -> Any:
    """A TestClient signed in as `username` (its .csrf holds the session's CSRF token)."""
    import re

    from fastapi.testclient import TestClient

    client = TestClient(app, base_url="https://testserver")  # cookies are Secure
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": token.group(1), "next": "/"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    home = client.get("/", follow_redirects=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
    client.csrf = found.group(1) if found else ""  # type: ignore[attr-defined]
    return client


@pytest.fixture(autouse=True)
def _close_every_cli() -> Iterator[None]:
    """A Cli (tests/support/cli.py) left open by a test is closed after it."""
    yield
    from .support import cli

    cli.close_all()


@pytest.fixture(scope="session")
def cli_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder made once per worker by the commands a new user runs (tests/support/cli.py)."""
    from .support.cli import prepare_folder

    folder = tmp_path_factory.mktemp("cli-prepared")
    prepare_folder(folder, DATA / "org.yaml")
    return folder


@pytest.fixture
def cli(cli_folder: Path, tmp_path: Path) -> Iterator[Any]:
    """`drp` on a copy of cli_folder (initialised, tests/data/org.yaml loaded): a Cli."""
    import shutil

    from .support.cli import Cli

    shutil.copytree(cli_folder, tmp_path, dirs_exist_ok=True)
    c = Cli(tmp_path)
    yield c
    c.close()


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A real SMTP server on loopback (aiosmtpd) that records what it receives."""
    from .smtp import SmtpServer

    server = SmtpServer()
    server.start()
    yield server
    server.stop()
