"""`drp simulate --add`: a year written on top of what the database holds, never under it.
Refused by default in one line that names --add; with it, the new alerts take the next numbers,
the organisation there is used as it stands (nothing loaded over it), and the concerns still
open from the year before are resolved by their IROs on the first working day."""

from __future__ import annotations

import json
from pathlib import Path

from drp.settings import CONFIG_DIR

from .support.cli import Cli

SMALL = ("--profile", "peterborough", "--scale", "0.05")
OPEN_AT_END = ("--profile", "peterborough", "--scale", "0.2")  # one formal alert left open


def test_a_second_year_is_added_only_when_asked_and_only_after_the_first(
        tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("init")
    first = json.loads(cli("simulate", "--year", "2019", *OPEN_AT_END, "--json").stdout)
    assert first["problems"] == [] and first["outstanding_at_end"] > 0
    ids = cli.rows("select max(id) from alert")[0][0]
    people = cli.rows("select count(*) from person")

    line = cli.refused("simulate", "--year", "2020", *SMALL)
    assert line.startswith("drp: the database already has") and "--add" in line
    assert "\n" not in line
    assert cli.rows("select max(id) from alert")[0][0] == ids

    assert cli.refused("simulate", "--year", "2019", *SMALL, "--add").startswith(
        "drp: the database has events up to ")  # never under what is there

    second = json.loads(cli("simulate", "--year", "2020", *SMALL, "--add", "--json").stdout)
    assert second["problems"] == []
    # Every concern open on 31 March 2020 resolved on the first working day of 2020/21.
    assert second["carried_over"] == first["outstanding_at_end"]
    assert cli.rows("select count(*) from alert where status = 'open' and raised_at <"
                    " '2020-04-01'") == [(0,)]
    assert cli.rows("select min(id) from alert where raised_at >= '2020-04-01'")[0][0] == ids + 1
    assert cli.rows("select count(*) from person") == people  # the same organisation


def test_years_two_and_add_on_a_loaded_organisation(tmp_path: Path) -> None:
    """--years 2 writes the year before first; --add raises the alerts in an organisation
    already loaded (the demo council), whose people and children stay as they are."""
    cli = Cli(tmp_path)
    cli("init")
    cli("org", "load", str(CONFIG_DIR / "demo.yaml"))
    people = cli.rows("select username, active from person order by id")
    children = cli.rows("select ref, active from child order by id")
    assert cli.refused("simulate", "--year", "2020", *SMALL).startswith(
        "drp: the database already has an organisation")
    result = json.loads(cli("simulate", "--year", "2020", *SMALL, "--years", "2", "--add",
                            "--json").stdout)
    assert result["problems"] == [] and result["earlier_years"][0]["problems"] == []
    assert result["earlier_years"][0]["period"]["from"] == "2019-04-01"
    assert cli.rows("select username, active from person order by id") == people
    assert cli.rows("select ref, active from child order by id") == children
    assert cli.rows("select count(*) from alert where raised_at < '2020-04-01'")[0][0] > 0
