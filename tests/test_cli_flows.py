"""`drp flows run` as a user runs it (each run starts a local Prefect server, ~10 s)."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import DATA
from .test_cli import Cli


def test_flows_run_from_the_command_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("init")
    cli("org", "load", str(DATA / "org.yaml"))
    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
        "--stage", "stage1", "--now", "2027-03-18T10:00")  # due Thu 25 March
    reminder = json.loads(cli("flows", "run", "timescales", "--now", "2027-03-24T08:00",
                              "--json").stdout)
    assert reminder["reminded"] == [1] and reminder["escalated"] == []
    assert reminder["ack_reminded"] == [1]  # tm.fay has not acknowledged since the 18th
    # (Easter Monday's run, which does nothing, and the digest's are left to the flows'
    # own tests: each `drp flows run` here starts a Prefect server, half a minute a time.)
    escalated = cli("flows", "run", "timescales", "--now", "2027-03-30T08:00").stdout
    assert "Timescales as of 2027-03-30: 0 resumed, 1 escalated," in escalated
    shown = cli.json("alert", "show", "1", "--as", "irom.cat")
    assert shown["stage"] == "stage2" and shown["events"][-1]["actor"] == "system"
    assert [e["kind"] for e in shown["events"]] == ["raised", "reminder", "ack_reminder",
                                                    "auto_escalated"]
    assert "there is no flow 'nope'" in cli.refused("flows", "run", "nope")
    assert "not a date and time" in cli.refused("flows", "run", "digest", "--now", "soon")


def test_a_prefect_server_that_does_not_start_is_one_line_saying_what_to_do(
    tmp_path: Path,
) -> None:
    """A busy machine where Prefect's temporary server does not start in time: one line and
    exit 1, not a traceback (here the limit is 1 s; drp allows 120 s unless told otherwise)."""
    cli = Cli(tmp_path)
    try:
        cli("init")
    finally:
        cli.close()
    cli.env = {k: v for k, v in cli.env.items() if not k.startswith("PREFECT_")}
    cli.env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "1"
    line = cli.refused("flows", "run", "themes", process=True)  # Prefect reads it at import
    assert line.startswith("drp: Prefect's temporary server did not start within 1 s (")
    assert line.endswith("; set PREFECT_API_URL to a long-lived Prefect server"
                         " (docs/deploying.md), or allow the temporary one longer"
                         " (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")
