"""The access matrix through the command line: every person against every `drp alert` command
(interface.md), on their own records and on others' (R100 is east, R200 west), with the same
policy tables as the web and API matrix (tests/test_web_routes.py). Allowed: exit 0 and one
event written. Refused: exit 1, one line on stderr, nothing on stdout, nothing written; a
record one may not see is refused as if it did not exist (no leak of its existence).

The commands run in this process (drp.cli.main, as the `drp` script does) on one SQLite
database for the module: a case costs a command, not a process and a new database."""

from __future__ import annotations

import json
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
    MOVE_TO,
    PEOPLE,
    SEES,
    TEAM_MANAGER,
    THEME,
    VISIBLE_CHILDREN,
    actor_for,
    may_do,
)

NOW = "2027-03-02T10:00"
DUE = "2027-03-10"
ARGS = {
    "respond": ["--message", "We will visit", "--action", f"Visit the child|{DUE}"],
    "escalate": ["--reason", "No progress"],
    "resolve": ["--outcome", "Agreed"],
    "withdraw": ["--reason", "Raised in error"],
    "hold": ["--reason", "Court hearing", "--until", "2027-03-20"],
    "resume": [],
    "extend": ["--until", "2027-03-15", "--reason", "More time"],
    "refer": ["--reason", "No resolution in time", "--legal-advice", "Legal services (J. Okoro)",
              "--advised-on", "2027-02-26"],
    "cafcass": ["--response", "accepted", "--note", "A guardian is allocated"],
    "acknowledge": [],
    "move": ["--child", MOVE_TO, "--reason", "Raised on the wrong child"],
    "link": [],  # the other alert: Module.linked
    "reopen": ["--reason", "Actions not done"],
    "theme": ["--theme", THEME],
    "done": [],
}
COMMAND = {"done": "action-done"}


class Module:
    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self.ready: dict[tuple[str, str], int] = {}
        self.linked: dict[str, int] = {}  # per child, the alert prepared ones are linked to

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
                                                  stage=stage, theme="funding",
                                                  separate=True).id))
        if op == "link" and child not in self.linked:
            self.linked[child] = int(self.do(lambda s: s.raise_alert(
                IRO[child], child, "CLI matrix related", theme="funding", separate=True).id))
        if op == "done":
            self.do(lambda s: s.respond(aid, HEAD[child], "We will review",
                                        [ActionIn("Review the plan", due)]))
        elif op == "resume":
            self.do(lambda s: s.hold(aid, IRO[child], "Court hearing", date(2027, 3, 20)))
        elif op == "cafcass":
            self.do(lambda s: s.refer(aid, IRO[child], "No resolution in time",
                                      legal_advice="Legal services (J. Okoro)"))
        elif op == "reopen":
            self.do(lambda s: s.respond(aid, TEAM_MANAGER[child], "We will visit",
                                        [ActionIn("Visit the child", due)]))
            self.do(lambda s: s.resolve(aid, IRO[child], "Agreed"))
        self.ready[op, child] = aid
        return aid

    def extra(self, op: str, child: str) -> list[str]:
        """The positional arguments after the alert's number: the action's, the other
        alert's."""
        return ["1"] if op == "done" else [str(self.linked[child])] if op == "link" else []

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
    code, out, err = drp(capsys, "alert", command, str(aid), *module.extra(op, child),
                         "--as", who, *ARGS[op], "--now", NOW)
    allowed = who in may_do(op, child)
    if op == "move" and allowed and MOVE_TO not in VISIBLE_CHILDREN[who]:
        # May move the alert, but not to a child they may not see: named as not found.
        assert code == 1 and f"there is no child {MOVE_TO!r} that {who} can see" in err
        assert module.count(Event, aid) == before
        return
    if allowed:
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
        code, _out, err = drp(capsys, "alert", COMMAND.get(op, op), str(aid),
                              *module.extra(op, "R100"), "--as", actor_for(op, "R100"),
                              *ARGS[op], "--now", NOW)
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


def test_the_process_commands_through_the_cli(
    module: Module, capsys: pytest.CaptureFixture[str],
) -> None:
    """interface.md "Process additions": good practice, --due, repeat concerns and --separate,
    acknowledge, refer with the legal advice, Cafcass's response, link, move, a hold's end
    date; each refusal one line naming the option. R101 is iro.ben's (east-a: tm.fay)."""
    import json

    clock = iter(f"2027-03-02T{h:02d}:{m:02d}" for h in range(11, 18) for m in range(0, 60, 5))

    def ok(*args: str) -> Any:
        code, out, err = drp(capsys, "alert", *args, "--now", next(clock), "--json")
        assert code == 0, (args, err)
        return json.loads(out)

    def refused(*args: str) -> str:
        code, out, err = drp(capsys, "alert", *args, "--now", next(clock))
        lines = err.strip().splitlines()
        assert code == 1 and out == "" and len(lines) == 1, (args, out, err)
        return lines[0]

    gp = ok("raise", "--as", "iro.ben", "--child", "R101", "--summary", "Life-story work",
            "--detail", "Dan and the carers", "--kind", "good-practice")
    assert {k: gp[k] for k in ("kind", "status", "stage", "stage_due", "resolution_due",
                               "responsible", "overdue")} == {
        "kind": "good_practice", "status": "closed", "stage": "good_practice",
        "stage_due": None, "resolution_due": None, "responsible": None, "overdue": False}
    assert refused("raise", "--as", "iro.ben", "--child", "R101", "--summary", "x", "--kind",
                   "good-practice", "--stage", "stage1").endswith("takes no stage: leave it"
                                                                  " out (put more in the"
                                                                  " detail) (--stage)")
    a = ok("raise", "--as", "iro.ben", "--child", "R101", "--summary", "No plan",
           "--due", "2027-03-05", "--separate")
    assert (a["stage"], a["stage_due"], a["resolution_due"]) == ("informal", "2027-03-05", None)
    assert gp["id"] in a["child_alerts"]
    line = refused("raise", "--as", "iro.ben", "--child", "R101", "--summary", "Again")
    assert "already has an open alert (" in line and str(a["id"]) in line and "--separate" in line
    b = ok("raise", "--as", "iro.ben", "--child", "R101", "--summary", "Another matter",
           "--separate")
    assert a["id"] in b["child_alerts"] and b["events"][0]["kind"] == "raised"
    assert "--due 9999-12-31 is outside the dates drp accepts" in refused(
        "raise", "--as", "iro.ben", "--child", "R101", "--summary", "x", "--separate",
        "--due", "9999-12-31")
    aid = str(a["id"])

    v = ok("acknowledge", aid, "--as", "tm.fay")
    assert v["acknowledged_by"] == "tm.fay" and v["acknowledged_at"].startswith("2027-03-02T")
    assert v["stage_due"] == "2027-03-05"  # acknowledged is not responded
    assert "already been acknowledged" in refused("acknowledge", aid, "--as", "tm.fay")
    assert "may not acknowledge" in refused("acknowledge", aid, "--as", "sw.dan")

    assert refused("refer", aid, "--as", "iro.ben", "--reason", "No plan").endswith(
        "(--legal-advice), after consulting the IRO manager")
    assert "may not refer" in refused("refer", aid, "--as", "irom.cat", "--reason", "x",
                                      "--legal-advice", "Legal services")
    v = ok("refer", aid, "--as", "iro.ben", "--reason", "No plan", "--legal-advice",
           "Legal services (J. Okoro)", "--advised-on", "2027-03-01")
    assert (v["status"], v["stage"]) == ("open", "informal")
    assert {k: v["cafcass"][k] for k in ("referred_on", "legal_advice", "response")} == {
        "referred_on": "2027-03-02", "legal_advice": "Legal services (J. Okoro)",
        "response": None}
    assert "already been referred" in refused("refer", aid, "--as", "iro.ben", "--reason", "x",
                                              "--legal-advice", "Legal services")
    assert "(--response)" in refused("cafcass", aid, "--as", "iro.ben", "--response", "maybe")
    v = ok("cafcass", aid, "--as", "iro.ben", "--response", "proceedings", "--note", "Issued")
    assert (v["cafcass"]["response"], v["cafcass"]["response_note"]) == ("proceedings", "Issued")

    v = ok("link", aid, str(gp["id"]), "--as", "iro.ben")
    assert v["related"] == [gp["id"]] and v["events"][-1]["kind"] == "linked"
    assert "already linked" in refused("link", str(gp["id"]), aid, "--as", "iro.ben")
    assert "needs an end date (--until" in refused("hold", aid, "--as", "iro.ben", "--reason",
                                                   "Court")

    code, shown, err = drp(capsys, "alert", "show", aid, "--as", "iro.ben")
    assert code == 0, err
    for words in ("Acknowledged by tm.fay", "Referred to Cafcass on 2027-03-02 by iro.ben",
                  "legal advice: Legal services (J. Okoro), 2027-03-01", "proceedings",
                  f"Linked alerts: {gp['id']}", "Child R101's other alerts:"):
        assert words in shown, (words, shown)

    assert "no child 'R100' that iro.ben can see" in refused(
        "move", aid, "--as", "iro.ben", "--child", "R100", "--reason", "Wrong child")
    v = ok("move", aid, "--as", "iro.ben", "--child", "R200", "--reason", "Wrong child")
    assert (v["child"], v["team"], v["iro"], v["responsible"]) == (
        "R200", "west-a", "iro.ben", "tm.gus")
    assert v["events"][-1]["kind"] == "moved" and v["events"][-1]["team"] == "west-a"
    assert a["id"] not in ok("show", str(gp["id"]), "--as", "iro.ben")["child_alerts"]
    # On R200's line, tm.gus has yet to acknowledge it; once answered, that is said instead.
    assert "Not yet acknowledged by tm.gus" in drp(capsys, "alert", "show", aid, "--as",
                                                   "iro.ben")[1]
    ok("respond", aid, "--as", "tm.gus", "--message", "Plan agreed")
    assert "Answered at this stage" in drp(capsys, "alert", "show", aid, "--as", "iro.ben")[1]


def test_wrong_input_exits_1_with_one_line_and_changes_nothing(
    module: Module, capsys: pytest.CaptureFixture[str],
) -> None:
    aid = str(module.do(lambda s: s.raise_alert("iro.ada", "R100", "Refusals",
                                                separate=True).id))
    before = drp(capsys, "alert", "show", aid, "--as", "irom.cat", "--json")[1]
    refusals = [
        (("alert", "reopen", aid, "--as", "iro.ada", "--reason", "x"), "at informal"),
        (("alert", "escalate", aid, "--as", "iro.ada", "--reason", "x", "--to", "stage9"),
         "no stage 'stage9'"),
        (("alert", "raise", "--as", "iro.ada", "--child", "R999", "--summary", "x"),
         "no child 'R999'"),
        (("alert", "raise", "--as", "tm.fay", "--child", "R100", "--summary", "x"),
         "only the child's IRO"),
        (("alert", "escalate", aid, "--as", "nobody", "--reason", "x"),
         "no active person 'nobody'"),
        (("alert", "respond", aid, "--as", "tm.fay", "--message", "x", "--action", "no date"),
         "needs a due date"),
        (("alert", "respond", aid, "--as", "tm.fay", "--message", "x", "--action",
          "Do it|2027-13-01"), "not a date"),
        (("alert", "extend", aid, "--as", "iro.ada", "--until", "2027-03-06", "--reason", "x",
          "--now", "2027-03-02T09:00"), "not a working day"),
        (("alert", "show", "99999", "--as", "irom.cat"), "no alert 99999"),
        # The allocated IRO's powers: an IRO manager escalates only as recorded cover.
        (("alert", "escalate", aid, "--as", "irom.cat", "--reason", "x"), "may not escalate"),
        (("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "y"),
         "already has an open alert ("),
        (("alert", "hold", aid, "--as", "iro.ada", "--reason", "Court", "--until",
          "9999-12-31"), "outside the dates drp accepts"),
    ]
    for args, expected in refusals:
        code, out, err = drp(capsys, *args)
        assert (code, out) == (1, ""), (args, out, err)
        assert len(err.strip().splitlines()) == 1 and expected in err, (args, err)
    after = drp(capsys, "alert", "show", aid, "--as", "irom.cat", "--json")[1]
    assert json.loads(after)["events"] == json.loads(before)["events"]
