"""The command line as a user runs it: a fresh SQLite file, an organisation that is not the
demo's, exit statuses and one-line errors (docs: interface.md).

The commands run in this process, as the `drp` script runs them (tests/support/cli.py): a
process each cost two to three seconds of imports a command. A few run as real processes
(Cli.process): the script itself, exit 0, 1 and 2 as a shell sees them. Each test starts from
a copy of one folder prepared per worker (conftest's `cli`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from drp.audit import os_user

from .conftest import DATA
from .support.cli import DRP, Cli

__all__ = ["DRP", "Cli"]  # other test files import them from here


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Cli]:
    """A folder where nothing has been run yet."""
    c = Cli(tmp_path)
    yield c
    c.close()


def test_an_alert_goes_up_the_ladder_to_cafcass_over_easter(cli: Cli) -> None:
    a = cli.json("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary",
                 "No social work report before the review", "--impact", "Review delayed",
                 "--theme", "accountability_record_keeping", "--now", "2027-03-22T09:00")
    assert a["id"] == 1
    assert {k: a[k] for k in ("child", "status", "stage", "iro", "responsible", "theme",
                              "raised_at", "stage_due", "resolution_due", "overdue")} == {
        "child": "R100", "status": "open", "stage": "informal", "iro": "iro.ada",
        "responsible": "tm.fay", "theme": "accountability_record_keeping",
        "raised_at": "2027-03-22T09:00:00+00:00", "stage_due": "2027-03-31",
        "resolution_due": None, "overdue": False,  # informal: no formal clock yet
    }
    assert (a["kind"], a["cafcass"], a["acknowledged_by"], a["related"]) == (
        "concern", None, None, [])
    # What the event recorded beside its comment: the clocks as they stood, the theme.
    data = a["events"][0].pop("data")
    assert (data["stage_due"], data["resolution_due"], data["theme"]) == (
        "2027-03-31", None, "accountability_record_keeping")
    assert a["events"] == [{"at": "2027-03-22T09:00:00+00:00", "actor": "iro.ada",
                            "kind": "raised", "from_stage": None, "to_stage": "informal",
                            "comment": "No social work report before the review",
                            "team": "east-a", "iro": "iro.ada", "as_cover_for": None,
                            "channel": "cli", "os_user": os_user(), "client": None}]

    r = cli.json("alert", "respond", "1", "--as", "tm.fay", "--message", "Will share",
                 "--action", "Share the report|2027-04-09", "--now", "2027-03-24T09:00")
    assert r["actions"][0]["due"] == "2027-04-09" and r["actions"][0]["owner"] == "tm.fay"
    steps = [
        ("2027-03-25T09:00", "stage1", "tm.fay", "2027-04-05"),  # Easter skipped
        ("2027-03-31T09:00", "stage2", "hos.ivy", "2027-04-07"),
        ("2027-04-08T09:00", "stage3", "ad.kim", "2027-04-15"),
        ("2027-04-16T09:00", "stage4", "dcs.lou", "2027-04-23"),
    ]
    for now, stage, who, due in steps:
        v = cli.json("alert", "escalate", "1", "--as", "iro.ada", "--reason", "No progress",
                     "--now", now)
        assert (v["stage"], v["responsible"], v["stage_due"]) == (stage, who, due)
        # The formal clock: 20 working days from the first formal stage (Easter skipped).
        assert v["resolution_due"] == "2027-04-26"
    line = cli.refused("alert", "escalate", "1", "--as", "iro.ada", "--reason", "x",
                       "--now", "2027-04-19T09:00")
    assert "at stage4" in line and "drp alert refer" in line
    # No referral without the legal advice: one line, exit 1, nothing written. (Blank advice
    # and a future date are the service layer's refusals, tested in tests/test_alerts.py.)
    counts = "SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM access_log)," \
             " (SELECT count(*) FROM outbox), (SELECT version FROM alert WHERE id = 1)"
    before = cli.rows(counts)
    refer = ("alert", "refer", "1", "--as", "iro.ada", "--reason", "No plan",
             "--now", "2027-04-26T09:00")
    assert "needs the legal advice taken: say who gave it (--legal-advice)" in cli.refused(
        *refer)
    assert "--advised-on '2027-02-30' is not a date" in cli.refused(
        *refer, "--legal-advice", "Legal services", "--advised-on", "2027-02-30")
    assert cli.rows(counts) == before
    v = cli.json("alert", "refer", "1", "--as", "iro.ada", "--reason", "Legal advice taken",
                 "--legal-advice", "Ms Okafor, legal services", "--advised-on", "2027-04-23",
                 "--now", "2027-04-26T09:00")
    # Concurrent with the local process: the alert keeps its status and stage.
    assert (v["status"], v["stage"]) == ("open", "stage4")
    assert {k: v["cafcass"][k] for k in ("referred_on", "legal_advice", "response")} == {
        "referred_on": "2027-04-26", "legal_advice": "Ms Okafor, legal services",
        "response": None}
    [(data,)] = cli.rows("SELECT data FROM event WHERE kind = 'referred'")
    referral = json.loads(data)
    assert (referral["legal_advice"], referral["advised_on"]) == (
        "Ms Okafor, legal services", "2027-04-23")
    shown = cli.json("alert", "show", "1", "--as", "irom.cat")
    assert [e["kind"] for e in shown["events"]] == [
        "raised", "responded", "action_agreed", "escalated", "escalated", "escalated",
        "escalated", "referred"]
    assert [e["to_stage"] for e in shown["events"]][-5:] == [
        "stage1", "stage2", "stage3", "stage4", "stage4"]
    listed = cli.json("alert", "list", "--as", "irom.cat", "--status", "open")
    assert [x["id"] for x in listed] == [1] and "events" not in listed[0]
    assert listed[0]["cafcass"]["legal_advice"] == "Ms Okafor, legal services"


def test_wrong_people_and_stages_exit_1_with_one_line_and_change_nothing(cli: Cli) -> None:
    """The first as a user's shell sees it (a process); the full list of refusals runs with the
    access matrix in tests/test_cli_matrix.py."""
    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
        "--now", "2026-03-02T09:00")
    before = cli.json("alert", "show", "1", "--as", "irom.cat")
    refusals = [
        (("alert", "escalate", "1", "--as", "tm.fay", "--reason", "x"), "may not escalate"),
        (("alert", "respond", "1", "--as", "sw.eve", "--message", "x"), "no alert 1"),
        (("alert", "escalate", "1", "--as", "iro.ada", "--reason", "x", "--now", "2027-02-30"),
         "not a date and time"),
        (("alert", "hold", "1", "--as", "iro.ada", "--reason", "Court"),
         "a hold needs an end date (--until"),
    ]
    for i, (args, expected) in enumerate(refusals):
        assert expected in cli.refused(*args, process=i == 0), args
    after = cli.json("alert", "show", "1", "--as", "irom.cat")
    assert after["events"] == before["events"] and after["stage"] == before["stage"]


def test_usage_errors_exit_2(cli: Cli) -> None:
    cli.process("alert", "escalate", "1", "--as", "iro.ada", code=2)  # --reason missing
    cli("alert", "frobnicate", code=2)


def test_calendar_commands(cli: Cli) -> None:
    assert cli.process("calendar", "add", "2022-09-16", "1").stdout.strip() == "2022-09-20"
    assert cli("calendar", "add", "2026-03-09", "-5").stdout.strip() == "2026-03-02"
    assert cli("calendar", "between", "2023-05-05", "2023-05-09").stdout.strip() == "1"
    assert "not a date" in cli.refused("calendar", "add", "2026-02-30", "1")


def test_a_bad_org_file_exits_1_naming_the_line(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((DATA / "org.yaml").read_text().replace("tm.fay}", "tm.fey}"))
    line = cli.refused("org", "load", str(bad))
    assert "line 20: teams[0].team_manager: tm.fey is not in people" in line


def test_a_bad_protocol_setting_exits_1(cli: Cli, tmp_path: Path) -> None:
    cli.env["DRP_PROTOCOL"] = str(tmp_path / "missing.yaml")
    assert "no such file" in cli.refused("protocol", "show")


def test_protocol_show_and_diagram(cli: Cli, tmp_path: Path) -> None:
    shown = cli("protocol", "show").stdout
    assert "Stage 2: Head of service" in shown and "head of service" in shown
    cli.env["DRP_PROTOCOL"] = str(Path(__file__).parent.parent / "config" /
                                  "protocol.manchester.yaml")
    assert "Stage 5: Director" in cli("protocol", "show").stdout
    cli("protocol", "diagram", "--out", str(tmp_path / "ladder.mmd"))
    assert "stage5" in (tmp_path / "ladder.mmd").read_text()


def test_commands_before_init_say_what_to_do(fresh: Cli) -> None:
    assert "run `drp init` first" in fresh.refused("alert", "list", "--as", "x")


def test_demo_runs_and_lists_alerts(fresh: Cli) -> None:
    c = fresh
    out = c("demo").stdout
    assert "irom.khan" in out and "Added 8 demo alerts" in out
    listed = c.json("alert", "list", "--as", "irom.khan")
    assert len(listed) == 8
    assert "already has 8 alert(s)" in c("demo").stdout
    assert "Added 8 demo alerts" in c("demo", "--reset").stdout  # downgrades with alerts in


def test_text_that_looks_like_markup_is_shown_as_written(cli: Cli) -> None:
    """Summaries, comments and actions are people's words: "[/]" or "[bold]" in them is shown
    as it is in the tables (never styled, never a traceback)."""
    cli.env.update(DRP_SMTP_HOST="127.0.0.1", DRP_SMTP_PORT="1")  # the mail waits, listed
    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary",
        "Plan [/] missing [bold]x", "--now", "2026-03-02T09:00")
    cli("alert", "respond", "1", "--as", "tm.fay", "--message", "[/] on it [red]",
        "--action", "Visit [the child]|2026-03-09", "--now", "2026-03-02T10:00")
    listed = cli("alert", "list", "--as", "iro.ada").stdout
    assert "Plan [/] missing [bold]x" in listed
    shown = cli("alert", "show", "1", "--as", "iro.ada").stdout
    assert "[/] on it [red]" in shown and "Visit [the child]" in shown
    assert "[drp]" in cli("outbox", "list").stdout  # subjects keep their "[drp]" tag
