"""The digest a person gets covers every service they oversee, and the fortnight's digest goes
on the first working day on or after its digest day, once (a run that starts late still
sends it)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from drp import db
from drp.calendar import WorkingCalendar
from drp.digest import digest_dates, not_today
from drp.ladder.protocol import Protocol
from drp.org import load_org

from .conftest import DATA, Run, backends
from .test_digest import CAL, digest_at, digests


def two_services_for_ivy(engine: Engine, protocol: Protocol, folder: Path) -> None:
    """Ivy heads the east service and also manages the west one."""
    text = (DATA / "org.yaml").read_text()
    text = text.replace("roles: [head_of_service]}", "roles: [head_of_service, service_manager]}",
                        1).replace("{key: west, name: West Service, head_of_service: hos.jon}",
                                   "{key: west, name: West Service, head_of_service: hos.jon,"
                                   " service_manager: hos.ivy}")
    (folder / "org.yaml").write_text(text)
    with db.transaction(engine) as s:
        load_org(s, folder / "org.yaml", protocol)


@backends
def test_a_person_overseeing_two_services_gets_one_digest_with_both(
    run: Run, org: Engine, protocol: Protocol, tmp_path: Path
) -> None:
    two_services_for_ivy(org, protocol, tmp_path)
    east = int(run("2027-03-01T10:00", lambda s: s.raise_alert("iro.ada", "R100", "x")).id)
    west = int(run("2027-03-10T10:00", lambda s: s.raise_alert("iro.ben", "R200", "z")).id)
    report = digest_at(org, protocol, "2027-03-15T08:00")
    assert sorted(report.sent_to) == ["hos.ivy", "hos.jon", "irom.cat", "sm.hal"]
    assert report.already_sent == []
    sent = digests(org)
    ivy = sent["hos.ivy"]
    assert "Outstanding alerts for East Service and West Service" in ivy
    assert "2 alerts are open for East Service and West Service" in ivy
    assert ("You receive this as head of service for East Service and service manager for"
            " West Service.") in ivy
    # A section a service, each with its own alerts.
    assert "East Service: 1 open, 1 overdue" in ivy and "West Service: 1 open, 0 overdue" in ivy
    assert (ivy.index("East Service: 1 open") < ivy.index(f"OVERDUE Alert {east} ")
            < ivy.index("West Service: 1 open") < ivy.index(f"Alert {west} "))
    # The others, as before: one service each, or the whole council.
    assert "R100" in sent["sm.hal"] and "R200" not in sent["sm.hal"]
    assert "R200" in sent["hos.jon"] and "R100" not in sent["hos.jon"]
    assert "East Service:" not in sent["hos.jon"]
    assert "R100" in sent["irom.cat"] and "R200" in sent["irom.cat"]
    # The same fortnight again: nothing new for anyone.
    again = digest_at(org, protocol, "2027-03-16T08:00")
    assert again.sent_to == [] and len(again.already_sent) == 4


@backends
def test_the_scheduled_run_sends_on_the_first_working_day_on_or_after_the_digest_day(
    org: Engine, protocol: Protocol
) -> None:
    def why_not(day: date) -> str | None:
        with Session(org) as s:
            return not_today(s, CAL, day)

    # 2027-03-08 is a digest Monday (fortnights from 2024-01-01). Workers down that day: the
    # Tuesday's run sends it, and the runs after it say it went.
    assert why_not(date(2027, 3, 6)) == "2027-03-06 is not a working day; nothing sent"
    assert why_not(date(2027, 3, 8)) is None and why_not(date(2027, 3, 9)) is None
    digest_at(org, protocol, "2027-03-09T08:00")
    for day in (date(2027, 3, 8), date(2027, 3, 10), date(2027, 3, 19)):
        assert why_not(day) == ("The digest for the fortnight from 2027-03-08 was already sent"
                                " (its digest day 2027-03-08); nothing sent")
    assert why_not(date(2027, 3, 22)) is None  # the next fortnight's
    # Boxing Day (observed) is Monday 28 December 2026: that fortnight's digest goes on the
    # Tuesday, not on the bank holiday; a late start the Wednesday after still sends it.
    assert "not a working day" in str(why_not(date(2026, 12, 28)))
    assert why_not(date(2026, 12, 29)) is None and why_not(date(2026, 12, 30)) is None


@backends
def test_an_iro_manager_who_also_heads_a_service_gets_the_whole_councils_digest(
    run: Run, org: Engine, protocol: Protocol, tmp_path: Path
) -> None:
    text = (DATA / "org.yaml").read_text().replace(
        "roles: [iro_manager]}", "roles: [iro_manager, head_of_service]}").replace(
        "head_of_service: hos.jon}", "head_of_service: irom.cat}")
    (tmp_path / "org.yaml").write_text(text)
    with db.transaction(org) as s:
        load_org(s, tmp_path / "org.yaml", protocol)
    run("2027-03-01T10:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    report = digest_at(org, protocol, "2027-03-15T08:00")
    assert sorted(report.sent_to) == ["hos.ivy", "irom.cat", "sm.hal"]
    assert report.already_sent == []
    cat = digests(org)["irom.cat"]
    assert "Totals by stage:" in cat and "R100" in cat  # the council's, not West's alone


@backends
@pytest.mark.parametrize("empty_note", [False, True])
def test_the_fortnights_digest_goes_once_even_when_nobody_had_anything(
    run: Run, org: Engine, protocol: Protocol, empty_note: bool
) -> None:
    """With empty notes off, a digest day with nothing open queues nothing for anyone: the
    fortnight's digest has still gone, and no later weekday sends one off-cycle."""
    def why_not(day: date) -> str | None:
        with Session(org) as s:
            return not_today(s, CAL, day)

    assert why_not(date(2027, 3, 9)) is None  # workers down on the Monday: a late start
    quiet = digest_at(org, protocol, "2027-03-09T08:00", empty_note=empty_note)
    assert sorted(quiet.sent_to) == ([] if not empty_note else ["hos.ivy", "hos.jon",
                                                                 "irom.cat", "sm.hal"])
    run("2027-03-10T10:00", lambda s: s.raise_alert("iro.ada", "R100", "x"))
    for day in (date(2027, 3, 10), date(2027, 3, 11), date(2027, 3, 19)):
        assert why_not(day) == ("The digest for the fortnight from 2027-03-08 was already sent"
                                " (its digest day 2027-03-08); nothing sent")
    assert why_not(date(2027, 3, 22)) is None  # the next fortnight's
    later = digest_at(org, protocol, "2027-03-22T08:00", empty_note=empty_note)
    assert "irom.cat" in later.sent_to and "sm.hal" in later.sent_to


def test_a_fortnights_digest_day_beyond_its_fortnight_is_listed_once() -> None:
    """A council closed for three weeks (and Easter Monday after): the digest day of the
    fortnight that starts in the closure falls in the next fortnight, on that one's."""
    closed = WorkingCalendar({date(2027, 3, 8) + timedelta(days=i): "Closed"
                              for i in range(21)})
    days = digest_dates(date(2027, 3, 1), 3, closed)
    assert days == [date(2027, 3, 30), date(2027, 4, 5), date(2027, 4, 19)], days
