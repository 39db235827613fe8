"""The fortnightly digest: who gets which alerts, once per fortnight; its dates."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from drp import db
from drp.calendar import WorkingCalendar
from drp.clock import parse_instant
from drp.digest import digest_dates, digest_day, fortnight_start, queue_digest
from drp.ladder.protocol import Protocol
from drp.models import OutboxMessage
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy
from notifications.render import Renderer

from .conftest import LONDON, Run, backends

CAL = WorkingCalendar()


def digest_at(engine: Engine, protocol: Protocol, when: str, empty_note: bool = True) -> object:
    with db.transaction(engine) as s:
        return queue_digest(
            s, protocol=protocol, calendar=CAL, taxonomy=load_taxonomy(CONFIG_DIR / "themes.yaml"),
            renderer=Renderer(), base_url="https://drp.example", tz=LONDON,
            now=parse_instant(when, LONDON), empty_note=empty_note)


def digests(engine: Engine) -> dict[str, str]:
    with Session(engine) as s:
        return {m.recipient: m.text_body for m in s.exec(select(OutboxMessage))
                if m.message == "digest"}


def test_digest_days_are_alternate_mondays_moved_off_bank_holidays() -> None:
    assert digest_dates(date(2026, 1, 1), 4, CAL) == [
        date(2026, 1, 12), date(2026, 1, 26), date(2026, 2, 9), date(2026, 2, 23)]
    # With fortnights from 15 March 2027, Easter Monday (29 March) moves to the Tuesday.
    anchor = date(2027, 3, 15)
    assert digest_dates(date(2027, 3, 20), 3, CAL, anchor) == [
        date(2027, 3, 30), date(2027, 4, 12), date(2027, 4, 26)]
    assert fortnight_start(date(2027, 4, 1), anchor) == date(2027, 3, 29)
    assert digest_day(date(2027, 4, 9), CAL, anchor) == date(2027, 3, 30)
    # Late May bank holiday and Christmas
    assert digest_day(date(2026, 5, 26), CAL, date(2026, 5, 25)) == date(2026, 5, 26)
    assert digest_day(date(2026, 12, 30), CAL, date(2026, 12, 28)) == date(2026, 12, 29)


@backends
def test_each_head_of_service_gets_their_services_alerts_overdue_first(
    run: Run, org: Engine, protocol: Protocol
) -> None:
    a = int(run("2027-03-01T10:00", lambda s: s.raise_alert(
        "iro.ada", "R100", "x", theme="safeguarding")).id)
    b = int(run("2027-03-10T10:00", lambda s: s.raise_alert("iro.ben", "R101", "y")).id)
    c = int(run("2027-03-10T10:00", lambda s: s.raise_alert("iro.ben", "R200", "z")).id)
    # Referred to Cafcass: still outstanding, and marked. Good practice is never outstanding.
    run("2027-03-11T10:00", lambda s: s.refer(b, "iro.ben", "Drift", legal_advice="Legal"))
    good = int(run("2027-03-11T11:00", lambda s: s.record_good_practice(
        "iro.ada", "R100", "A thorough plan")).id)
    report = digest_at(org, protocol, "2027-03-15T08:00")
    sent = digests(org)
    assert set(sent) == {"hos.ivy", "sm.hal", "hos.jon", "irom.cat"}
    east = sent["hos.ivy"]
    assert f"Alert {c} " not in east and "R200" not in east
    assert east.index(f"OVERDUE Alert {a} ") < east.index(f"Alert {b} ")  # overdue first
    assert "theme: Safeguarding" in east and "open 10 working days" in east
    assert f"Alert {b} | child R101 | East A | Informal resolution (referred to Cafcass 11" \
           " March) |" in east
    assert f"Alert {good} " not in east
    assert sent["sm.hal"] == east.replace("head of service", "service manager")
    assert "R200" in sent["hos.jon"] and "R100" not in sent["hos.jon"]
    everything = sent["irom.cat"]
    assert all(ref in everything for ref in ("R100", "R101", "R200"))
    assert "Totals by stage: Informal resolution 3." in everything
    assert "Totals by team: East A 2; West A 1." in everything
    assert report.fortnight == date(2027, 3, 8)  # fortnights from 2024-01-01
    # The same fortnight again: nothing new.
    again = digest_at(org, protocol, "2027-03-19T08:00")
    assert again.sent_to == [] and len(again.already_sent) == 4
    # The next fortnight: a new digest each.
    nxt = digest_at(org, protocol, "2027-03-22T08:00")
    assert len(nxt.sent_to) == 4


def test_nothing_outstanding_gets_a_short_note_or_nothing(org: Engine, protocol: Protocol) -> None:
    digest_at(org, protocol, "2027-03-15T08:00", empty_note=False)
    assert digests(org) == {}
    digest_at(org, protocol, "2027-03-15T08:00")
    assert "Nothing is outstanding for East Service" in digests(org)["hos.ivy"]


def test_an_iro_manager_no_longer_active_gets_no_digest(org: Engine, protocol: Protocol) -> None:
    """Only active IRO managers read the council's digest (drp.directory.AN_IRO_MANAGER, the
    condition the e-mails' copies use too)."""
    from sqlalchemy import text

    with org.begin() as conn:
        conn.execute(text("UPDATE person SET active = false WHERE username = 'irom.cat'"))
    digest_at(org, protocol, "2027-03-15T08:00")
    sent = digests(org)
    assert "hos.ivy" in sent and "irom.cat" not in sent


def test_digest_dates_are_local_days_with_the_year_when_not_this_one(
    run: Run, org: Engine, protocol: Protocol
) -> None:
    # Raised at 00:30 BST on 1 June (31 May in UTC); referred to Cafcass and last touched in
    # December; the digest goes out in the new year.
    a = int(run("2027-06-01T00:30", lambda s: s.raise_alert("iro.ada", "R100", "x")).id)
    run("2027-12-20T10:00", lambda s: s.refer(a, "iro.ada", "Drift", legal_advice="Legal"))
    b = int(run("2028-01-04T00:30+01:00", lambda s: s.raise_alert("iro.ben", "R101", "y")).id)
    digest_at(org, protocol, "2028-01-10T08:00")
    with Session(org) as s:
        east = next(m for m in s.exec(select(OutboxMessage)) if m.recipient == "hos.ivy")
    assert f"Alert {a} | child R100 | East A | Informal resolution (referred to Cafcass" \
           " 20 December 2027) |" in east.text_body
    assert "last: referred 20 December 2027 |" in east.text_body
    # 23:30 on 3 January in London (UTC+0 in winter): the local day, this year's, no year.
    assert f"Alert {b} " in east.text_body and "last: raised 3 January |" in east.text_body
    assert "(referred to Cafcass 20 December 2027)" in east.html_body
    assert east.subject.startswith("[drp] Check 1 overdue alert: 2 outstanding for")


def test_local_days_of_naive_utc_instants_across_clock_changes() -> None:
    """The digest's local days of SQLite's instants (naive UTC), with the zone's offset kept an
    hour at a time, are clock.local_date's all year: London's, and zones whose clocks change
    at midnight (Santiago, Havana, so a wrong offset is a wrong day) or on the half hour of UTC
    (St John's, Newfoundland)."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from drp.clock import local_date
    from drp.digest import _LocalDays

    for zone in (LONDON, ZoneInfo("America/Santiago"), ZoneInfo("America/Havana"),
                 ZoneInfo("America/St_Johns")):
        days = _LocalDays(zone)
        instant = datetime(2027, 1, 1, 0, 0, 59, 999_999)
        while instant.year == 2027:
            aware = instant.replace(tzinfo=UTC)
            assert days(instant) == local_date(aware, zone), (zone, instant)
            assert days(aware) == local_date(aware, zone), (zone, aware)
            instant += timedelta(minutes=29)


def test_a_dicts_own_attributes_still_read_as_jinja_reads_them() -> None:
    """Rendering reads `a.b` on a plain dict as its item first, except dict's own attributes,
    which stay what Jinja gives (the method), as before."""
    renderer = Renderer()
    template = renderer.env.from_string(
        "{{ d.name }}|{{ d['items'] }}|{{ d.items is callable }}|{{ d.missing is defined }}")
    assert template.render(d={"name": "Ivy", "items": 3}) == "Ivy|3|True|False"
