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
from pathlib import Path
from typing import Any

import pytest

from drp import configfile
from drp.configfile import load_yaml
from drp.errors import ConfigError
from drp.ladder.protocol import Protocol
from drp.org import parse_org
from tests.conftest import DATA

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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
