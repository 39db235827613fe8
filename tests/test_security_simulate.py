"""`drp simulate` on the wrong database or year: a year not yet ended writes events dated ahead
(refused unless DRP_ALLOW_FUTURE_NOW=1, as `--now` in the future is), and a database with an
organisation would get the simulation's own council loaded over it (63 simulated people added
to a live council's, its own deactivated). Both are refused in one line, writing nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from drp.calendar import WorkingCalendar
from drp.errors import BadValue
from drp.ladder.protocol import Protocol
from drp.models import Alert, Person
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy
from drp.tools.simulation import simulate

from .conftest import LONDON
from .support.cli import Cli

THIS_YEAR = date.today().year  # its reporting year ends on 31 March next year: ahead


def people(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(Person)).one())


def run(engine: Engine, protocol: Protocol, year: int) -> None:
    simulate(engine, protocol, WorkingCalendar(), load_taxonomy(CONFIG_DIR / "themes.yaml"),
             LONDON, year=year, profile="peterborough", scale=0.05, say=lambda _line: None)


def test_a_year_not_yet_ended_is_refused_without_the_future_switch(
        engine: Engine, protocol: Protocol, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRP_ALLOW_FUTURE_NOW")
    for year in (THIS_YEAR, 2031):
        with pytest.raises(BadValue) as refused:
            run(engine, protocol, year)
        assert refused.value.message.startswith(
            f"--year {year} runs to 31 March {year + 1}, later than the real clock (")
        assert "needs DRP_ALLOW_FUTURE_NOW=1" in refused.value.message
    assert people(engine) == 0  # nothing loaded


def test_a_database_with_an_organisation_is_refused_whatever_the_year(
        org: Engine, protocol: Protocol, monkeypatch: pytest.MonkeyPatch) -> None:
    """A year that has ended passes the clock's rule (the refusal is the organisation's),
    and with the switch set a future year is refused for the organisation too."""
    before = people(org)
    assert before > 0
    for year, switch in ((THIS_YEAR - 2, False), (2031, True)):
        if switch:
            monkeypatch.setenv("DRP_ALLOW_FUTURE_NOW", "1")
        else:
            monkeypatch.delenv("DRP_ALLOW_FUTURE_NOW")
        with pytest.raises(BadValue, match=(
                rf"^the database already has an organisation \({before} people\); a simulated"
                r" year loads its own council's people.*use a new database.*drp init")):
            run(org, protocol, year)
    assert people(org) == before
    with Session(org) as s:
        assert s.exec(select(func.count()).select_from(Alert)).one() == 0


def test_drp_simulate_on_a_live_database_refuses_in_one_line_adding_nobody(
        tmp_path: Path) -> None:
    """What the review ran: `drp init`, `drp org load config/demo.yaml`, then a simulated
    2031. It exited 0, wrote events dated 2032 and added 63 people to the council's."""
    cli = Cli(tmp_path)
    del cli.env["DRP_ALLOW_FUTURE_NOW"]
    cli("init")
    cli("org", "load", str(CONFIG_DIR / "demo.yaml"))
    before = cli.rows("select count(*) from person")
    args = ("simulate", "--year", "2031", "--profile", "peterborough", "--scale", "0.05")
    line = cli.refused(*args)
    assert line.startswith("drp: --year 2031 runs to 31 March 2032, later than the real clock")
    assert line.endswith("(time travel into the future needs DRP_ALLOW_FUTURE_NOW=1: tests,"
                         " simulations, demos and training copies only)")
    cli.env["DRP_ALLOW_FUTURE_NOW"] = "1"
    assert cli.refused(*args).startswith(
        f"drp: the database already has an organisation ({before[0][0]} people)")
    assert cli.rows("select count(*) from person") == before
    assert cli.rows("select count(*) from event") == [(0,)]
