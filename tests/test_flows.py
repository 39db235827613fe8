"""The flows under a real local Prefect server (one for the session): they act through the
service layer, rerun safely, leave artifacts, and their schedules give the right dates."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from drp import db
from drp.calendar import WorkingCalendar
from drp.digest import digest_day
from drp.models import OutboxMessage
from drp.runtime import runtime

from .conftest import forget_settings
from .smtp import SmtpServer
from .support import databases

pytestmark = pytest.mark.usefixtures("prefect_api")  # the session's Prefect server


@pytest.fixture
def smtp(drp_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    monkeypatch.setenv("DRP_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DRP_SMTP_PORT", str(server.port))
    forget_settings()
    rt = runtime()
    databases.migrate(rt.engine, "org")  # tests/data/org.yaml, as the template has it
    yield server
    server.stop()


def raise_alert(when: str, child: str, iro: str, stage: str | None = None) -> int:
    from drp.clock import FixedClock, parse_instant

    rt = runtime()
    with db.transaction(rt.engine) as s:
        svc = rt.service(s, FixedClock(parse_instant(when, rt.settings.tz)), rt.notifier())
        return int(svc.raise_alert(iro, child, "Care plan drift", stage=stage).id or 0)


def test_the_timescale_flow_escalates_once_and_says_what_it_did(smtp: SmtpServer) -> None:
    from prefect.client.orchestration import get_client

    from flows.timescales import timescales_flow

    aid = raise_alert("2027-03-01T10:00", "R100", "iro.ada", stage="stage1")
    result = timescales_flow(now="2027-03-09T08:00")
    assert result["escalated"] == [aid] and result["counts"]["escalated"] == 1
    assert "7 sent" in result["mail"]  # 3 from raising; hos.ivy, tm.fay, iro.ada, irom.cat
    again = timescales_flow(now="2027-03-09T08:00")
    assert again["counts"] == {k: 0 for k in again["counts"]}
    later = timescales_flow(now="2027-03-09T15:00")
    assert later["counts"]["escalated"] == 0
    assert [r.subject for r in smtp.to("ivy@riverside.example")] == [
        "[drp] Respond by 16 March: alert 1 (R100) escalated to Stage 2"]

    async def reports() -> list[tuple[str, str]]:
        """This test's timescale artifacts (description, markdown), oldest first."""
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
        from prefect.client.schemas.sorting import ArtifactSort

        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["drp-timescales"])),
                sort=ArtifactSort.CREATED_DESC)
        return [(str(a.description), str(a.data)) for a in reversed(artifacts)
                if "as of 2027-03-09T" in str(a.description)]

    made = asyncio.run(reports())
    assert [d.split("as of ")[1][:16] for d, _ in made] == [
        "2027-03-09T08:00", "2027-03-09T08:00", "2027-03-09T15:00"]
    first, rerun, afternoon = (markdown for _, markdown in made)
    assert "| escalated | 1 |" in first
    assert f"- escalated automatically: {aid}\n" in first
    for nothing in (rerun, afternoon):
        assert "| escalated | 0 |" in nothing
        assert "- escalated automatically: none\n" in nothing


def test_the_digest_flow_sends_once_per_fortnight_on_or_after_its_day(smtp: SmtpServer) -> None:
    from flows.digest import digest_flow

    raise_alert("2027-03-01T10:00", "R100", "iro.ada")

    def digests() -> list[str]:
        return [r.rcpt[0] for r in smtp.received if " outstanding for " in r.subject]

    # 2027-03-08 is a digest Monday (fortnights from 2024-01-01). Nothing the Saturday before;
    # with the workers down on the Monday, the Tuesday's run sends it, and only it.
    skipped = digest_flow(now="2027-03-06T08:00", only_on_digest_day=True)
    assert "not a working day" in skipped["skipped"] and digests() == []
    sent = digest_flow(now="2027-03-09T08:00", only_on_digest_day=True)
    assert sorted(sent["queued_for"]) == ["hos.ivy", "hos.jon", "irom.cat", "sm.hal"]
    later = digest_flow(now="2027-03-10T08:00", only_on_digest_day=True)
    assert "already sent" in later["skipped"] and later["queued_for"] == []
    assert digest_flow(now="2027-03-09T09:00")["queued_for"] == []
    assert len(digests()) == 4
    jon = smtp.to("jon@riverside.example")[0]
    assert "Nothing is outstanding for West Service" in jon.part("plain")
    assert "R100" in smtp.to("ivy@riverside.example")[0].part("html")


def test_the_themes_flow_categorises_alerts_without_a_theme(smtp: SmtpServer) -> None:
    from drp.alerts import AlertService
    from drp.clock import FixedClock, parse_instant
    from flows.themes import themes_flow

    rt = runtime()
    with db.transaction(rt.engine) as s:  # raised with no classifier at hand: no theme
        svc = AlertService(s, protocol=rt.protocol, calendar=rt.calendar, tz=rt.settings.tz,
                           clock=FixedClock(parse_instant("2027-03-01T10:00", rt.settings.tz)))
        aid = int(svc.raise_alert("iro.ada", "R100", "Pathway plan not started at 17 and no"
                                  " personal adviser").id or 0)
        # Good practice has no theme to suggest: the flow leaves it alone (a good-practice
        # record cannot take a theme, and once stopped the whole night's work).
        svc.record_good_practice("iro.ada", "R100", "Thorough pathway planning with the young"
                                 " person")
    result = themes_flow(now="2027-03-02T01:30")
    assert result["unthemed"] == [aid] and result["categorised"] == [aid]
    assert themes_flow(now="2027-03-03T01:30")["unthemed"] == []
    with db.transaction(rt.engine) as s:
        from drp.models import Alert

        alert = s.get(Alert, aid)
        assert alert is not None
        assert (alert.theme, alert.theme_confirmed) == ("leaving_care", False)


def test_schedules_run_the_digest_on_alternate_mondays_and_after_bank_holidays() -> None:
    from prefect.server.schemas.schedules import CronSchedule

    from flows.serve import DIGEST_CRON, RETENTION_CRON, TIMESCALES_CRON, TZ, deployments

    names = {d.name: d for d in deployments()}
    assert set(names) == {"drp-timescales", "drp-digest", "drp-themes", "drp-retention"}
    assert names["drp-digest"].parameters == {"only_on_digest_day": True}
    cal = WorkingCalendar()
    london = ZoneInfo(TZ)

    def runs(cron: str, start: datetime, n: int) -> list[datetime]:
        dates = CronSchedule(cron=cron, timezone=TZ).get_dates(n=n, start=start)
        if asyncio.iscoroutine(dates):
            dates = asyncio.run(dates)
        return [datetime.fromtimestamp(d.timestamp(), london) for d in dates]

    # The digest cron fires every weekday at 08:00; the flow sends on digest days only.
    fired = runs(DIGEST_CRON, datetime(2026, 12, 1, tzinfo=UTC), 60)
    assert all(d.hour == 8 and d.weekday() < 5 for d in fired)
    sends = [d.date() for d in fired if d.date() == digest_day(d.date(), cal)]
    # Boxing Day (observed) is Monday 28 December 2026: that digest goes on the Tuesday.
    assert sends[:5] == [date(2026, 12, 14), date(2026, 12, 29), date(2027, 1, 11),
                         date(2027, 1, 25), date(2027, 2, 8)]
    spring = [d.date() for d in runs(DIGEST_CRON, datetime(2027, 3, 20, tzinfo=UTC), 20)
              if d.date() == digest_day(d.date(), cal)]
    assert spring[:2] == [date(2027, 3, 22), date(2027, 4, 5)]
    timescale_hours = {d.hour for d in runs(TIMESCALES_CRON, datetime(2027, 3, 1, tzinfo=UTC), 24)}
    assert timescale_hours == set(range(7, 19))
    # Retention: nightly at 02:30, every day of the week.
    nightly = runs(RETENTION_CRON, datetime(2027, 3, 1, tzinfo=UTC), 7)
    assert [(d.hour, d.minute) for d in nightly] == [(2, 30)] * 7
    assert len({d.date() for d in nightly}) == 7


def test_no_outbox_rows_are_left_pending(smtp: SmtpServer) -> None:
    from flows.timescales import timescales_flow

    raise_alert("2027-03-01T10:00", "R100", "iro.ada", stage="stage1")
    timescales_flow(now="2027-03-05T08:00")
    with Session(runtime().engine) as s:
        assert {m.status for m in s.exec(select(OutboxMessage))} == {"sent"}


def test_prefect_yaml_deploys_the_same_flows_and_schedules_as_serve() -> None:
    """Name, flow, cron, zone and parameters: what `prefect deploy --all` makes is what
    `drp flows serve` runs."""
    import yaml

    from flows.serve import TZ, schedule

    spec = yaml.safe_load((Path(__file__).parent.parent / "prefect.yaml").read_text())
    deployed = {d["name"]: (d["entrypoint"].split(":")[1],
                            [(s["cron"], s["timezone"]) for s in d["schedules"]],
                            d.get("parameters") or {})
                for d in spec["deployments"]}
    served = {job.name: (job.run.fn.__name__, [(job.cron, TZ)], job.parameters)
              for job in schedule()}
    assert deployed == served
    assert served["drp-digest"][2] == {"only_on_digest_day": True}
    for d in spec["deployments"]:
        module, name = d["entrypoint"].split(":")
        assert (Path(__file__).parent.parent / module).exists() and name.endswith("_flow")


def test_the_local_schedule_runs_each_flow_at_its_time() -> None:
    from flows.serve import Scheduled, tick

    calls: list[tuple[str, dict[str, object]]] = []
    london = ZoneInfo("Europe/London")

    def job(name: str, cron: str, **params: object) -> Scheduled:
        return Scheduled(name, cron, lambda **kw: calls.append((name, kw)), dict(params))

    jobs = [job("timescales", "0 7-18 * * 1-5"),
            job("digest", "0 8 * * 1-5", only_on_digest_day=True)]
    start = datetime(2027, 3, 26, 6, 0, tzinfo=london)  # Good Friday, before 07:00
    assert tick(jobs, start) == []  # first tick only sets the next times
    assert jobs[0].due == datetime(2027, 3, 26, 7, 0, tzinfo=london)
    assert tick(jobs, datetime(2027, 3, 26, 7, 0, 30, tzinfo=london)) == ["timescales"]
    assert tick(jobs, datetime(2027, 3, 26, 7, 1, tzinfo=london)) == []  # not twice
    assert tick(jobs, datetime(2027, 3, 26, 8, 0, tzinfo=london)) == ["timescales", "digest"]
    assert calls[-1] == ("digest", {"only_on_digest_day": True})
    # Friday 18:00 is the last of the week; the next is Monday 07:00.
    tick(jobs, datetime(2027, 3, 26, 18, 0, tzinfo=london))
    assert jobs[0].due == datetime(2027, 3, 29, 7, 0, tzinfo=london)

    def broken(**_kw: object) -> None:
        raise RuntimeError("boom")

    failing = [Scheduled("x", "* * * * *", broken)]
    tick(failing, start)
    # Survives; a run that never started keeps its time, tried again at the next poll.
    assert tick(failing, datetime(2027, 3, 26, 6, 2, tzinfo=london)) == []
    assert failing[0].due == datetime(2027, 3, 26, 6, 1, tzinfo=london)


def test_flows_serve_says_when_each_flow_runs_next_in_local_time(
    drp_env: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import UTC, datetime

    from flows import serve

    said: list[str] = []

    class Stop(Exception):
        pass

    def stop(_seconds: float) -> None:
        raise Stop

    monkeypatch.setattr(serve.time, "sleep", stop)
    with pytest.raises(Stop):  # Tuesday 24 November 2026, 10:00 GMT
        serve.serve_all(say=said.append, clock=lambda: datetime(2026, 11, 24, 10, 0,
                                                                  tzinfo=UTC))
    assert said[0] == "drp-timescales: next run Tue 24 Nov 2026 11:00 (Europe/London)"
    assert said[1].startswith("drp-digest: next run Wed 25 Nov 2026 08:00 (Europe/London);"
                              " it looks every weekday and sends on the fortnight's digest"
                              " day, next Mon ")
    assert said[2] == "drp-themes: next run Wed 25 Nov 2026 01:30 (Europe/London)"
