"""Issue 15, bad input and what drp writes: each finding of the penetration test reproduced
against the real parts (the YAML loader, the organisation file, the web app on SQLite and
PostgreSQL, the `drp` command, the files on disk), refused with one line naming the line or the
field, or answered with a 4xx; never a traceback, a 500 or a whole 10 MB echo."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drp import configfile
from drp.configfile import load_yaml
from drp.errors import ConfigError
from drp.ladder.protocol import Protocol
from drp.org import parse_org
from tests.conftest import (
    DATA,
    MovableClock,
    backends,
    forget_settings,
    point_drp_at,
    prepare,
    sign_in,
)

ORG = (DATA / "org.yaml").read_text(encoding="utf-8")

# -- 1. YAML aliases: a 563-byte "billion laughs" (nine levels of nine aliases: 9**9 values) --
LAUGHS = "\n".join([
    "council: Laughs",
    "people:",
    "  - username: a",
    '    name: &l0 "lol"',
    "    roles: [iro]",
    *(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)),
    "",
])
FIRST_ALIAS_LINE = 6  # l1's line: its first *l0


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the line walker's node visits; past 10,000 (this file has a few dozen nodes, its
    expansion 9**9) the walk is stopped: the old walker followed every alias."""
    seen = [0]
    walk = configfile._Lines.walk

    def counted(self: configfile._Lines, node: Any, path: tuple[Any, ...] = ()) -> None:
        seen[0] += 1
        if seen[0] > 10_000:
            raise AssertionError("the line walker follows aliases (over 10,000 node visits)")
        walk(self, node, path)

    monkeypatch.setattr(configfile._Lines, "walk", counted)
    return seen


def test_a_billion_laughs_is_refused_before_any_walk_naming_the_line(
        tmp_path: Path, protocol: Protocol, walks: list[int]) -> None:
    path = tmp_path / "org.yaml"  # (the protocol is loaded before the walks are counted)
    path.write_text(LAUGHS, encoding="utf-8")
    assert len(path.read_bytes()) < 600
    with pytest.raises(ConfigError) as refused:
        parse_org(path, protocol)
    assert str(refused.value) == (f"{path}, line {FIRST_ALIAS_LINE}: YAML aliases (*l0) are"
                                  " not accepted; write the value out in full")
    assert walks == [0]


def test_one_alias_is_refused_too_and_a_file_without_any_still_loads(
        tmp_path: Path, walks: list[int]) -> None:
    path = tmp_path / "org.yaml"
    path.write_text("council: &c Riverside\nname: *c\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 2: YAML aliases \(\*c\) are not accepted"):
        load_yaml(path)
    assert load_yaml(DATA / "org.yaml").data["council"]
    assert 0 < walks[0] < 1000


def test_drp_org_load_refuses_a_billion_laughs_in_one_line_within_bounds(
        tmp_path: Path) -> None:
    """The command as a process, with 1 GB of address space and 60 s: the old loader used
    about 10 GB within 3 minutes on this file."""
    from tests.support.cli import DRP, Cli

    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS, encoding="utf-8")
    cli = Cli(tmp_path)
    cli("init")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    proc = subprocess.run([DRP, "org", "load", str(path)], capture_output=True, text=True,
                          env=cli.env, cwd=tmp_path, timeout=60, preexec_fn=limit)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"drp: {path}, line {FIRST_ALIAS_LINE}: YAML aliases (*l0) are not accepted; write the"
        " value out in full"]


# -- 2. An organisation file that is not UTF-8, or holds a control character -----------------
def test_an_organisation_file_not_in_utf8_is_refused_in_one_line(
        tmp_path: Path, protocol: Protocol) -> None:
    path = tmp_path / "org.yaml"
    path.write_bytes(ORG.replace("council: ", "council: Sant\u00e9 ", 1).encode("latin-1"))
    with pytest.raises(ConfigError) as refused:
        parse_org(path, protocol)
    assert str(refused.value) == (f"{path}, line 1: not UTF-8 text (byte 0xe9); save the file"
                                  " as UTF-8")


def test_a_nul_byte_in_an_organisation_file_is_refused_naming_its_line(
        tmp_path: Path, protocol: Protocol) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(ORG.replace("roles: [iro]", "roles: [iro\x00]", 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line \d+: not valid YAML: unacceptable character"
                                          r" #x0000") as refused:
        parse_org(path, protocol)
    assert "\n" not in str(refused.value)


# -- 5. One e-mail address per person ---------------------------------------------------------
@pytest.mark.parametrize("address", [
    "ada@x.test,ben@y.test", "ada,ben@riverside.example", "ada@riverside.example,ben.example",
    "Ada <ada@riverside.example>", "<ada@riverside.example>", "ada@riverside.example;ben",
    "ada..b@riverside.example", "ada@riverside", "ada@-riverside.example"])
def test_an_email_that_is_not_one_address_is_refused_naming_the_person(
        tmp_path: Path, protocol: Protocol, address: str) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(ORG.replace("email: ada@riverside.example", f"email: '{address}'", 1),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        parse_org(path, protocol)
    message = str(refused.value)
    assert message.startswith(f"{path}, line 3: people[0].email: {address!r} is not an e-mail"
                              " address for iro.ada: it "), message
    assert "\n" not in message


@pytest.mark.parametrize("address", ["ada@riverside.example", "o'brien+drp@riverside.gov.uk",
                                     "j\u00f6rg@m\u00fcller.example"])
def test_a_real_address_is_accepted(tmp_path: Path, protocol: Protocol, address: str) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(ORG.replace("email: ada@riverside.example", f"email: \"{address}\"", 1),
                    encoding="utf-8")
    assert parse_org(path, protocol).people[0].email == address


# -- 3. Files: the database (and its -wal, -shm) and the mail for this user alone -------------
def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_and_its_folders_are_private_whatever_the_umask(
        tmp_path: Path) -> None:
    from sqlalchemy import text

    from drp import db

    old = os.umask(0o022)  # the usual umask: files 0644, folders 0755 unless drp says
    try:
        path = tmp_path / "var" / "data" / "drp.db"
        engine = db.make_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            files = {p.name: mode(p) for p in path.parent.iterdir()}
        engine.dispose()
    finally:
        os.umask(old)
    assert {"drp.db", "drp.db-wal", "drp.db-shm"} <= set(files), files
    assert files == dict.fromkeys(files, 0o600), files
    assert (mode(tmp_path / "var"), mode(path.parent)) == (0o700, 0o700)


def test_eml_files_and_the_mail_folder_are_private_whatever_the_umask(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from notifications.transports import FileTransport, Outgoing

    folder = tmp_path / "var" / "mail"
    old = os.umask(0o022)
    try:
        FileTransport(folder, "drp@riverside.example").send(Outgoing(
            row_id=1, key="k", to_addr="ada@riverside.example", subject="R100",
            text="About R100", html="<p>About R100</p>",
            created_at=datetime(2027, 3, 1, tzinfo=UTC), message="raised"))
    finally:
        os.umask(old)
    (eml,) = folder.iterdir()
    assert eml.suffix == ".eml"
    assert (mode(tmp_path / "var"), mode(folder), mode(eml)) == (0o700, 0o700, 0o600)


def test_the_secret_key_and_the_theme_models_are_private_whatever_the_umask(
        tmp_path: Path) -> None:
    """The key that signs sessions and model files, and the models (trained on the council's
    own confirmed alerts too), are created for this user alone, like the database."""
    from drp.classifier import ModelCache
    from drp.keys import secret_key
    from drp.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'var' / 'drp.db'}",
                        mail_dir=tmp_path / "var" / "mail")
    old = os.umask(0o022)
    try:
        key = secret_key(settings)
        ModelCache(settings).save("k", {"a": "model"})  # type: ignore[arg-type]
    finally:
        os.umask(old)
    assert secret_key(settings) == key  # made once, then read
    (model,) = (tmp_path / "var" / "models").iterdir()
    assert (mode(tmp_path / "var"), mode(tmp_path / "var" / "secret_key"),
            mode(tmp_path / "var" / "models"), mode(model)) == (0o700, 0o600, 0o700, 0o600)


# -- 2. The web app and the API: NUL and other control characters, huge bodies, report dates --
@pytest.fixture
def site(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """The web app on this test's database (SQLite, or a PostgreSQL schema of its own), with
    tests/data/org.yaml and every password TEST_PASSWORD, at https://drp.example."""
    from drp import runtime
    from drp.web.app import create_app

    point_drp_at(monkeypatch, tmp_path)
    monkeypatch.setenv("DRP_DATABASE_URL", db_url)
    forget_settings()
    rt = runtime.runtime()
    prepare(rt)
    yield create_app(rt, MovableClock())
    rt.engine.dispose()
    forget_settings()


def quiet(client: Any) -> Any:
    """A client that answers a 500 as a 500 (the default raises the server's exception)."""
    client._transport.raise_server_exceptions = False
    return client


NUL_QUERIES = ["/alerts?team=east%00", "/alerts?status=%00open", "/alerts.csv?team=%00",
               "/outstanding?service=%00", "/api/alerts?team=east%00", "/api/alerts?status=%00",
               "/alerts?te%00am=east", "/reports/disputes?from=2026-04-01%00"]


@backends
def test_a_nul_byte_anywhere_is_refused_naming_the_field_never_a_500(site: Any) -> None:
    """On PostgreSQL each of these answered 500 (psycopg.DataError: text cannot hold NUL)."""
    ada, cat = quiet(sign_in(site, "iro.ada")), quiet(sign_in(site, "irom.cat"))
    for url in NUL_QUERIES:
        r = (cat if url.startswith("/reports") else ada).get(url)
        assert r.status_code == 422, (url, r.status_code, r.text[:300])
        if url.startswith("/api"):
            assert "holds a control character (NUL)" in r.json()["detail"]
        else:
            assert "holds a control character (NUL)" in r.text, url
    api = {"X-CSRF-Token": ada.csrf}
    r = ada.post("/api/alerts", json={"child": "R1\x0000", "summary": "No plan"}, headers=api)
    assert (r.status_code, r.json()["field"]) == (422, "child"), r.text
    aid = ada.post("/api/alerts", json={"child": "R100", "summary": "No plan"},
                   headers=api).json()["id"]
    fay = quiet(sign_in(site, "tm.fay"))
    r = fay.post(f"/api/alerts/{aid}/respond", headers={"X-CSRF-Token": fay.csrf}, json={
        "message": "We will visit", "actions": [
            {"text": "Visit", "due": "2027-03-10", "owner": "sw.dan\x00"}]})
    assert (r.status_code, r.json()["field"]) == (422, "actions[0].owner"), r.text
    r = ada.post("/alerts/new", follow_redirects=False, data={
        "child": "R100\x00", "summary": "No plan", "theme": "safeguarding",
        "stage": "informal", "separate": "yes", "do": "raise", "csrf_token": ada.csrf})
    assert r.status_code == 422 and "the field &#39;child&#39; holds a control" in r.text
    r = fay.post(f"/alerts/{aid}/respond", follow_redirects=False, data={
        "message": "We will visit", "action1": "Visit", "action1_due": "2027-03-10",
        "action1_owner": "sw.dan\x00", "csrf_token": fay.csrf})
    assert r.status_code == 422 and "action1_owner" in r.text, r.text[-500:]
    # Free text keeps its line breaks and tabs.
    r = ada.post("/api/alerts", headers=api, json={"child": "R100",
                                                   "summary": "No plan\n\tfor R100",
                                                   "separate": True})
    assert r.status_code == 201 and r.json()["summary"] == "No plan\n\tfor R100", r.text


@pytest.mark.parametrize("dates", ["from=0001-01-01&to=2026-03-31",
                                   "from=2026-04-01&to=9999-12-31",
                                   "from=2026-04-01&to=2025-04-01"])
def test_report_dates_out_of_range_answer_422(site: Any, dates: str) -> None:
    cat = quiet(sign_in(site, "irom.cat"))
    for fmt in ("page", "json", "csv"):
        r = cat.get(f"/reports/disputes?{dates}&format={fmt}")
        assert r.status_code == 422, (dates, fmt, r.status_code)
        assert "outside the dates drp accepts" in r.text or "is before" in r.text


@pytest.mark.parametrize(("start", "end"), [("0001-01-01", "2026-03-31"),
                                            ("2026-04-01", "9999-12-31")])
def test_drp_report_refuses_dates_out_of_range_in_one_line(
        tmp_path: Path, start: str, end: str) -> None:
    from tests.support.cli import Cli

    cli = Cli(tmp_path)
    cli("init")
    line = cli.refused("report", "disputes", "--from", start, "--to", end)
    assert "is outside the dates drp accepts (2000-01-01 to 2100-12-31)" in line


def test_a_huge_body_is_refused_413_and_a_refused_value_is_never_echoed(site: Any) -> None:
    ada = quiet(sign_in(site, "iro.ada"))
    api = {"X-CSRF-Token": ada.csrf}
    r = ada.post("/api/alerts", headers=api,
                 json={"child": "R100", "summary": "x" * 10_000_000})  # 10 MB
    assert r.status_code == 413 and len(r.content) < 1000, (r.status_code, len(r.content))
    assert "DRP_MAX_REQUEST_BYTES" in r.json()["detail"]
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")
    r = ada.post("/api/alerts", headers=api, json={"child": "R100", "summary": "y" * 1_000_000})
    assert r.status_code == 422 and len(r.content) < 1000, (r.status_code, len(r.content))
    assert r.json()["detail"][0]["loc"] == ["body", "summary"]
    assert "yyyy" not in r.text
    # Nor a field's name, nor a query value (both came back whole: a 1 MB key in `loc`).
    r = ada.post("/api/alerts", headers=api, json={"child": "R100", "summary": "s",
                                                  "k" * 1_000_000: 1})
    assert r.status_code == 422 and len(r.content) < 1000, (r.status_code, len(r.content))
    # A body nested without end is refused, not walked (the parser's own limit: 400; within
    # it, drp's walk of every string stops at 32 levels).
    deep = {"Content-Type": "application/json"}
    r = ada.post("/api/alerts", headers={**api, **deep}, content="[" * 100_000 + "]" * 100_000)
    assert r.status_code == 400, r.status_code
    r = ada.post("/api/alerts", headers={**api, **deep}, content='{"a":' * 40 + "1" + "}" * 40)
    assert r.status_code == 422 and "deeper than 32" in r.json()["detail"], r.text[:200]
    r = ada.get("/api/alerts", params={"status": "z" * 5000})
    assert r.status_code == 422 and len(r.content) < 1000, (r.status_code, len(r.content))
    assert r.json()["field"] == "status" and "--" not in r.json()["detail"]
    # A body without a length, sent in chunks, is counted as it comes.
    chunks = (b"x" * 500_000 for _ in range(6))
    r = ada.post("/api/alerts", headers={**api, "Content-Type": "application/json"},
                 content=chunks)
    assert r.status_code == 413, r.status_code


# -- 4. HSTS when drp's address is https; none over plain http ------------------------------
def test_hsts_is_sent_when_the_base_url_is_https_and_never_over_http(
        site: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from drp import runtime
    from drp.web.app import create_app

    for url in ("/login", "/healthz", "/openapi.json", "/no-such-page"):
        r = TestClient(site, base_url="https://testserver").get(url)
        assert r.headers.get("strict-transport-security") == (
            "max-age=31536000; includeSubDomains"), url
    monkeypatch.setenv("DRP_BASE_URL", "http://127.0.0.1:8000")
    forget_settings()
    plain_http = create_app(runtime.runtime(), MovableClock())
    r = TestClient(plain_http).get("/login")
    assert r.status_code == 200 and "strict-transport-security" not in r.headers


# -- 6. No Swagger page loading a CDN's scripts; the API's description stays ----------------
def test_no_page_loads_scripts_from_elsewhere_and_openapi_json_stays(site: Any) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(site, base_url="https://testserver")
    assert client.get("/api/docs").status_code == 404
    assert client.get("/openapi.json").json()["paths"]
    for url in ("/login", "/api/docs", "/docs", "/redoc"):
        assert "cdn" not in client.get(url).text.lower(), url


def test_the_command_line_refuses_a_control_character_in_an_argument(tmp_path: Path) -> None:
    """An escape sequence (ESC, U+001B) in an argument: refused in one line naming the option,
    by the same check as the web app's; free text keeps its line breaks."""
    from tests.support.cli import Cli

    cli = Cli(tmp_path)
    cli("init")
    line = cli.refused("report", "disputes", "--from", "2026-04-01\x1b[2J", "--to", "2027-03-31")
    assert line == ("drp: --from ('2026-04-01\\x1b[2J') holds a control character (U+001B) at"
                    " position 11; remove it")
    with pytest.raises(ValueError, match="embedded null byte"):  # the system's own refusal
        subprocess.run(["true", "a\x00b"], check=False)


# -- 7. Nesting and size: thousands of brackets, a file past the limit ------------------------
DEEP = {
    "lists": "council: X\npeople: " + "[" * 5000 + "]" * 5000 + "\n",
    "maps": "council: X\npeople: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    "block": "council: X\npeople:\n" + "".join(
        "  " * i + "- k:\n" for i in range(1, 40)) + "  " * 40 + "v\n",
}
# The line where the 21st level starts (the top-level mapping is the first; in "block", line
# n + 2 opens a list, level 2n, and a mapping in it, level 2n + 1).
DEEP_LINE = {"lists": 2, "maps": 2, "block": 12}


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the YAML parser's events drp reads before it refuses a file."""
    import yaml

    seen = [0]
    parse = yaml.parse

    def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for event in parse(*args, **kwargs):
            seen[0] += 1
            yield event

    monkeypatch.setattr(configfile.yaml, "parse", counted)
    return seen


@pytest.mark.parametrize("shape", sorted(DEEP))
def test_a_deeply_nested_file_is_refused_at_the_first_level_too_deep(
        tmp_path: Path, protocol: Protocol, events: list[int], shape: str) -> None:
    """Lists, flow mappings, block mappings: refused naming the line of the 21st level, after
    a few dozen of the parser's events (the old loader scanned on and then died of a
    RecursionError in the composer)."""
    path = tmp_path / "org.yaml"
    path.write_text(DEEP[shape], encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        parse_org(path, protocol)
    assert str(refused.value) == (
        f"{path}, line {DEEP_LINE[shape]}: nested deeper than {configfile.MAX_DEPTH} levels;"
        " drp's files need a few (a list of people, each a mapping)")
    assert 0 < events[0] < 3 * configfile.MAX_DEPTH + 10


def test_configuration_files_are_read_by_libyaml_alike_on_every_install(tmp_path: Path) -> None:
    """drp reads its files with libyaml's parser (PyYAML's wheels carry it). PyYAML's own
    pure-Python parser, its fallback, refuses a tab between a value and its comment and accepts
    an unknown directive: the same file would read differently from one install to another."""
    import yaml

    assert yaml.__with_libyaml__ and configfile._LOADER is yaml.CSafeLoader
    tabbed = tmp_path / "tabbed.yaml"
    tabbed.write_text("a: 1\t# a note\nb: [1,\t2]\n", encoding="utf-8")
    assert load_yaml(tabbed).data == {"a": 1, "b": [1, 2]}
    directive = tmp_path / "directive.yaml"
    directive.write_text("%FOO bar\n---\na: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_yaml(directive)
    assert str(refused.value) == (
        f"{directive}, line 1: not valid YAML: found unknown directive name")


def test_drp_org_load_refuses_200_kb_of_brackets_in_one_line_within_seconds(
        tmp_path: Path) -> None:
    """100,000 brackets (200 KB) ran for over 2 minutes and ended in a traceback. The command
    as a process with 1 GB of address space and 20 s of CPU; the refusal itself is timed in
    this process (generously: it takes a few hundredths of a second)."""
    import time

    from tests.support.cli import DRP, Cli

    path = tmp_path / "deep.yaml"
    path.write_text("council: X\npeople: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert len(path.read_bytes()) > 200_000
    began = time.perf_counter()
    with pytest.raises(ConfigError, match=r"line 2: nested deeper than 20 levels"):
        load_yaml(path)
    assert time.perf_counter() - began < 2
    cli = Cli(tmp_path)
    cli("init")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        resource.setrlimit(resource.RLIMIT_CPU, (20, 20))

    proc = subprocess.run([DRP, "org", "load", str(path)], capture_output=True, text=True,
                          env=cli.env, cwd=tmp_path, timeout=60, preexec_fn=limit)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"drp: {path}, line 2: nested deeper than 20 levels; drp's files need a few (a list of"
        " people, each a mapping)"]


def test_drp_org_load_refuses_a_file_past_the_size_limit_in_one_line(tmp_path: Path) -> None:
    """The limit the web upload has (configfile.MAX_FILE_BYTES), on the command line too,
    before any parsing: the file below is one long YAML comment."""
    from tests.support.cli import Cli

    path = tmp_path / "huge.yaml"
    path.write_bytes(ORG.encode() + b"#" * configfile.MAX_FILE_BYTES)
    size = path.stat().st_size
    cli = Cli(tmp_path)
    cli("init")
    assert cli.refused("org", "load", str(path)) == (
        f"drp: {path}: {size:,} bytes is too large for a configuration file; the limit is"
        f" {configfile.MAX_FILE_BYTES:,} bytes")
    ok = tmp_path / "ok.yaml"
    ok.write_text(ORG, encoding="utf-8")
    assert cli("org", "load", str(ok)).returncode == 0


@pytest.fixture
def admin_site(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
               ) -> Iterator[tuple[Any, Any]]:
    """The web app and its runtime on this test's database, tests/data/org.yaml loaded."""
    from drp import runtime
    from drp.web.app import create_app

    point_drp_at(monkeypatch, tmp_path)
    monkeypatch.setenv("DRP_DATABASE_URL", db_url)
    forget_settings()
    rt = runtime.runtime()
    prepare(rt)
    yield create_app(rt, MovableClock()), rt
    rt.engine.dispose()
    forget_settings()


def upload_org(admin: Any, content: bytes) -> Any:
    """The administration page's form, with its one-time key (claimed in the load's
    transaction: its row is that transaction's first write)."""
    import re

    form = re.search(r'action="/admin/org".*?name="idempotency_key" value="([^"]+)"',
                     admin.get("/admin").text, re.S)
    assert form, "the organisation form carries no one-time key"
    return admin.post("/admin/org", data={"csrf_token": admin.csrf,
                                          "idempotency_key": form.group(1)},
                      files={"file": ("org.yaml", content, "application/yaml")})


@backends
def test_a_deep_upload_is_refused_in_one_line_naming_the_line(
        admin_site: tuple[Any, Any]) -> None:
    app, _rt = admin_site
    admin = sign_in(app, "admin.max")
    r = upload_org(admin, DEEP["lists"].encode())
    assert r.status_code == 400
    assert ("The file, line 2: nested deeper than 20 levels; drp&#39;s files need a few"
            in r.text)


@backends
def test_an_upload_being_checked_holds_no_write_lock(
        admin_site: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """While an uploaded file is parsed (here held at its first parse until another write has
    committed), another transaction writes: the file is checked before the upload's own
    transaction (and its one-time key's row) opens. Parsed inside it, SQLite's one write lock
    was held the whole parse: the other write waited out its busy timeout, "database is
    locked"."""
    import threading

    from sqlmodel import select

    from drp import db
    from drp.models import Council

    app, rt = admin_site
    admin = sign_in(app, "admin.max")
    parsing, written = threading.Event(), threading.Event()
    refuse = configfile._refuse_aliases
    calls = [0]

    def slow(path: Path, text: str) -> None:
        calls[0] += 1
        if calls[0] == 1:  # the upload's first parse: hold it until the other write is done
            parsing.set()
            assert written.wait(timeout=30)
        refuse(path, text)

    monkeypatch.setattr(configfile, "_refuse_aliases", slow)
    answers: list[Any] = []
    renamed = ORG.replace("Riverside Borough Council", "Renamed Borough Council").encode()
    thread = threading.Thread(target=lambda: answers.append(upload_org(admin, renamed)))
    thread.start()
    try:
        assert parsing.wait(timeout=30)
        with db.transaction(rt.engine) as s:  # another write, while the upload parses
            council = s.exec(select(Council)).one()
            council.name = "Written Meanwhile Council"
            s.add(council)
    finally:
        written.set()
        thread.join(timeout=60)
    assert [a.status_code for a in answers] == [200]
    assert "Loaded Renamed Borough Council" in answers[0].text
    with db.transaction(rt.engine) as s:
        assert s.exec(select(Council)).one().name == "Renamed Borough Council"


# -- 8. Control characters and bidirectional overrides in the organisation file's strings ------
# (what is replaced in tests/data/org.yaml, by what (YAML escapes), the line and the field)
CONTROLLED = [
    ("name: Ada Iro", r'name: "Ada Iro\r\nBcc: c@z.test"', 3, "people[0].name",
     "a control character (U+000D) at position 8"),
    ("name: Ada Iro", r'name: "Ada \u202eorI"', 3, "people[0].name",
     "a bidirectional override (U+202E) at position 5"),
    ("council: Riverside Borough Council", r'council: "Riverside\e[2J"', 1, "council",
     "a control character (U+001B) at position 10"),
    ("username: iro.ben", r'username: "iro.ben\n"', 4, "people[1].username",
     "a control character (U+000A) at position 8"),
    ("email: cat@riverside.example", r'email: "cat@riverside.example\r\nBcc: c@z.test"', 5,
     "people[2].email", "a control character (U+000D) at position 22"),
    ("{key: east, name: East Service", r'{key: "east\t", name: East Service', 17,
     "services[0].key", "a control character (U+0009) at position 5"),
    ("name: West A", r'name: "West\u2066 A"', 21, "teams[1].name",
     "a bidirectional override (U+2066) at position 5"),
    ("ref: R101", r'ref: "R1\u008501"', 27, "children[1].ref",
     "a control character (U+0085) at position 3"),
    ("director: dcs.lou", r'director: "dcs.lou\a"', 24, "senior.director",
     "a control character (U+0007) at position 8"),
]


@pytest.mark.parametrize(("old", "new", "line", "field", "what"), CONTROLLED,
                         ids=[c[3] + "-" + c[4][2:9] for c in CONTROLLED])
def test_a_control_character_or_override_in_the_organisation_file_is_refused_naming_it(
        tmp_path: Path, protocol: Protocol, old: str, new: str, line: int, field: str,
        what: str) -> None:
    """A name holding CR LF and "Bcc: ..." (e-mail headers), an escape sequence (a terminal),
    a right-to-left override (text reading otherwise): refused by the one rule
    (drp.alerts.inputs.plain, and the overrides free text drops), naming line and field,
    never echoing the value."""
    path = tmp_path / "org.yaml"
    assert ORG.count(old) == 1
    path.write_text(ORG.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        parse_org(path, protocol)
    assert str(refused.value) == (f"{path}, line {line}: {field}: the value holds {what};"
                                  " remove it")


def test_a_cover_reason_may_hold_line_breaks_but_no_other_control_character(
        tmp_path: Path, protocol: Protocol) -> None:
    cover = ("cover:\n  - {person: iro.ada, deputy: iro.ben, from: 2027-03-01, to: 2027-03-05,"
             ' reason: "Annual leave\\n(two weeks)REASON"}\n')
    path = tmp_path / "org.yaml"
    path.write_text(ORG + cover.replace("REASON", ""), encoding="utf-8")
    assert parse_org(path, protocol).cover[0].reason == "Annual leave\n(two weeks)"
    path.write_text(ORG + cover.replace("REASON", "\\e[31m"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 30: cover\[0\]\.reason: the value holds a"
                                          r" control character \(U\+001B\) at position 25"):
        parse_org(path, protocol)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
