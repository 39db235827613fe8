"""`drp flows run` as a user runs it: once as a real process with no PREFECT_API_URL (it starts
Prefect's temporary server, half a minute a time), otherwise in this process against the
session's Prefect server (PREFECT_API_URL, as in production: tests/support/prefect.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .conftest import DATA, ROOT
from .test_cli import DRP, Cli


def test_flows_run_from_the_command_line(tmp_path: Path, prefect_api: str) -> None:
    cli = Cli(tmp_path)
    cli("init")
    cli("org", "load", str(DATA / "org.yaml"))
    cli("alert", "raise", "--as", "iro.ada", "--child", "R100", "--summary", "x",
        "--stage", "stage1", "--now", "2027-03-18T10:00")  # due Thu 25 March
    # With no PREFECT_* at all, as `make run` and a first try have it: Prefect's temporary
    # server starts (state in ./prefect beside drp.db) and the flow runs under it. In a
    # process of its own: Prefect's process-wide workers would otherwise keep sending to
    # that server after it stopped, and the test process's end would wait for them.
    env = {k: v for k, v in cli.env.items() if not k.startswith("PREFECT_")}
    proc = subprocess.run([DRP, "flows", "run", "timescales", "--now", "2027-03-24T08:00",
                           "--json"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    reminder = json.loads(proc.stdout)
    assert reminder["reminded"] == [1] and reminder["escalated"] == []
    assert reminder["ack_reminded"] == [1]  # tm.fay has not acknowledged since the 18th
    assert (tmp_path / "prefect").is_dir()
    # (Easter Monday's run, which does nothing, and the digest's are left to the flows' own
    # tests.) Against the long-lived server PREFECT_API_URL names, in this process:
    assert cli.env["PREFECT_API_URL"] == prefect_api
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


def test_the_start_limit_holds_where_prefect_was_imported_before_drp_set_it(
    tmp_path: Path,
) -> None:
    """drp run in a process that had imported Prefect already (a test worker, an embedding
    program): Prefect read its settings then, so drp's limit is applied when the server
    starts (seen failing: the 20 s Prefect read at import stood)."""
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DRP_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    script = ("import os, prefect.settings\n"
              "os.environ['PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS'] = '1'\n"
              "from flows import start_api\n"
              "print(start_api())\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.stdout.startswith("Prefect's temporary server did not start within 1 s ("), (
        proc.stdout, proc.stderr)
