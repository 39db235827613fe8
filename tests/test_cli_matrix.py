"""The access matrix through the command line: every person against every `drp alert` command
(interface.md), on their own records and on others' (R100 is east, R200 west), with the same
policy tables as the web and API matrix (tests/test_web_routes.py). Allowed: exit 0 and one
event written. Refused: exit 1, one line on stderr, nothing on stdout, nothing written; a
record one may not see is refused as if it did not exist (no leak of its existence).

The commands run in this process (drp.cli.main, as the `drp` script does) on one SQLite
database for the module: a case costs a command, not a process and a new database."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from drp import db
from drp.alerts import ActionIn, AlertService
from drp.clock import FixedClock, parse_instant
from drp.models import AccessLog, Event
from tests.conftest import LONDON, forget_settings, point_drp_at, prepare
from tests.test_web_routes import (
    CHILDREN,
    EVENT_OF,
    HEAD,
    IRO,
    PEOPLE,
    SEES,
    TEAM_MANAGER,
    THEME,
    may_do,
)

NOW = "2027-03-02T10:00"
DUE = "2027-03-10"
ARGS = {
    "respond": ["--message", "We will visit", "--action", f"Visit the child|{DUE}"],
    "escalate": ["--reason", "No progress"],
    "resolve": ["--outcome", "Agreed"],
    "withdraw": ["--reason", "Raised in error"],
    "hold": ["--reason", "Court hearing"],
    "resume": [],
    "extend": ["--until", "2027-03-15", "--reason", "More time"],
    "refer": ["--reason", "No resolution in time", "--legal-advice", "Legal services (J. Okoro)",
              "--advised-on", "2027-02-26"],
    "reopen": ["--reason", "Actions not done"],
    "theme": ["--theme", THEME],
    "done": [],
}
COMMAND = {"done": "action-done"}


class Module:
    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self.ready: dict[tuple[str, str], int] = {}

    def do(self, fn: Any) -> Any:
        with db.transaction(self.rt.engine) as s:
            svc = AlertService(s, protocol=self.rt.protocol, calendar=self.rt.calendar,
                               clock=FixedClock(parse_instant("2027-03-01T09:00", LONDON)),
                               tz=LONDON, taxonomy=self.rt.taxonomy)
            return fn(svc)

    def prepared(self, op: str, child: str) -> int:
        if (op, child) in self.ready:
            return self.ready[op, child]
        due = date.fromisoformat(DUE)
        stage = "stage2" if op == "done" else "informal"
        aid = int(self.do(lambda s: s.raise_alert(IRO[child], child, f"CLI matrix {op}",
                                                  stage=stage, theme="funding").id))
        if op == "done":
            self.do(lambda s: s.respond(aid, HEAD[child], "We will review",
                                        [ActionIn("Review the plan", due)]))
        elif op == "resume":
            self.do(lambda s: s.hold(aid, IRO[child], "Court hearing"))
        elif op == "reopen":
            self.do(lambda s: s.respond(aid, TEAM_MANAGER[child], "We will visit",
                                        [ActionIn("Visit the child", due)]))
            self.do(lambda s: s.resolve(aid, IRO[child], "Agreed"))
        self.ready[op, child] = aid
        return aid

    def count(self, model: Any, alert_id: int | None = None) -> int:
        with Session(self.rt.engine) as s:
            q = select(func.count()).select_from(model)
            if alert_id is not None:
                q = q.where(model.alert_id == alert_id)
            return int(s.exec(q).one())


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Module]:
    from drp import runtime as runtime_module

    tmp = tmp_path_factory.mktemp("cli_matrix")
    with pytest.MonkeyPatch.context() as mp:
        point_drp_at(mp, tmp)
        mp.setenv("COLUMNS", "200")
        rt = runtime_module.runtime()
        prepare(rt)
        yield Module(rt)
        forget_settings()
        rt.engine.dispose()


def drp(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from drp import cli

    capsys.readouterr()
    old = sys.argv
    sys.argv = ["drp", *args]
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def cases() -> Iterator[Any]:
    for who in PEOPLE:
        for op in ARGS:
            for child in CHILDREN:
                yield pytest.param(who, op, child, id=f"{who}-{op}-{child}")


@pytest.mark.parametrize(("who", "op", "child"), list(cases()))
def test_every_command_answers_as_the_access_policy_says(
    module: Module, capsys: pytest.CaptureFixture[str], who: str, op: str, child: str,
) -> None:
    aid = module.prepared(op, child)
    before = module.count(Event, aid)
    command = COMMAND.get(op, op)
    extra = ["1"] if op == "done" else []
    code, out, err = drp(capsys, "alert", command, str(aid), *extra, "--as", who,
                         *ARGS[op], "--now", NOW)
    if who in may_do(op, child):
        assert code == 0, err
        with Session(module.rt.engine) as s:
            kinds = [e.kind for e in s.exec(select(Event).where(Event.alert_id == aid))]
        assert EVENT_OF[op] in kinds[before:], kinds
        module.ready.pop((op, child))
        return
    assert code == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drp: ") and out == "", (out, err)
    assert module.count(Event, aid) == before
    if who not in SEES[child]:
        assert f"there is no alert {aid} that {who} can see" in lines[0]
        assert "CLI matrix" not in err


@pytest.mark.parametrize("who", PEOPLE)
def test_show_and_list_show_only_what_each_person_may_see_and_log_each_look(
    module: Module, capsys: pytest.CaptureFixture[str], who: str,
) -> None:
    import json

    ids = {c: module.prepared("escalate", c) for c in CHILDREN}
    for child, aid in ids.items():
        logged = module.count(AccessLog)
        code, out, err = drp(capsys, "alert", "show", str(aid), "--as", who, "--json")
        if who in SEES[child]:
            assert code == 0 and json.loads(out)["id"] == aid
            assert module.count(AccessLog) == logged + 1  # every view is audited
        else:
            assert code == 1 and out == "" and "CLI matrix" not in err
    code, out, _ = drp(capsys, "alert", "list", "--as", who, "--json")
    listed = {row["id"] for row in json.loads(out)} if code == 0 else set()
    for child, aid in ids.items():
        assert (aid in listed) == (who in SEES[child]), (who, child)


def test_no_command_alters_or_removes_the_audit_logs(
    module: Module, capsys: pytest.CaptureFixture[str],
) -> None:
    """The event and access logs only grow: after every kind of command, each earlier row is
    as it was (the database refuses UPDATE and DELETE on them: tests/test_migrations.py)."""
    from sqlalchemy import text

    def snapshot() -> tuple[list[Any], list[Any]]:
        with module.rt.engine.connect() as conn:
            events = [tuple(r) for r in conn.execute(text(
                "SELECT id, alert_id, seq, at, actor, kind, comment FROM event ORDER BY id"))]
            access = [tuple(r) for r in conn.execute(text(
                "SELECT id, at, actor, action, alert_id, detail FROM access_log ORDER BY id"))]
        return events, access

    events, access = snapshot()
    for op in ARGS:
        aid = module.prepared(op, "R100")
        who = {"respond": TEAM_MANAGER["R100"], "done": HEAD["R100"]}.get(op, IRO["R100"])
        extra = ["1"] if op == "done" else []
        code, _out, err = drp(capsys, "alert", COMMAND.get(op, op), str(aid), *extra,
                              "--as", who, *ARGS[op], "--now", NOW)
        assert code == 0, (op, err)
        module.ready.pop((op, "R100"))
    after_events, after_access = snapshot()
    assert after_events[:len(events)] == events and len(after_events) > len(events)
    assert after_access[:len(access)] == access and len(after_access) > len(access)


def test_demo_reset_refuses_to_erase_a_councils_records(
    module: Module, capsys: pytest.CaptureFixture[str],
) -> None:
    before = module.count(Event)
    code, out, err = drp(capsys, "demo", "--reset")
    assert code == 1 and out == ""
    assert "would erase them and their audit log" in err and len(err.strip().splitlines()) == 1
    assert module.count(Event) == before
