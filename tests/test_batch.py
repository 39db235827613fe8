"""The timescale run's set-based writer does exactly what the service layer's per-alert system
methods do: the same alerts, events and e-mails (rendered at delivery from the stored context,
word for word those the service layer renders), on SQLite and PostgreSQL. And when an alert
changes under it, the chunk is redone an alert at a time, still once each."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from drp import db, due_index, timescales
from drp.alerts import AlertService
from drp.batch import Batch, StaleChunk
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.ladder.protocol import Protocol
from drp.models import Alert, Event, OutboxMessage, Person
from drp.notify import Notifier
from drp.org import load_org
from notifications.outbox import deliver
from notifications.render import Renderer, load_context
from notifications.transports import FileTransport

from .conftest import DATA, LONDON, backends, pg_schema
from .support import databases

CAL = WorkingCalendar()
NOTIFIER = Notifier(renderer=Renderer(), base_url="https://drp.example")


@contextmanager
def second_database(db_url: str, tmp_path: Path, protocol: Protocol) -> Iterator[Engine]:
    @contextmanager
    def url() -> Iterator[str]:
        if db_url.startswith("sqlite"):
            yield f"sqlite:///{tmp_path / 'twin.db'}"
        else:
            with pg_schema() as pg:
                yield pg

    with url() as u:
        engine = db.make_engine(u)
        databases.migrate(engine, "org")  # tests/data/org.yaml, as the template has it
        try:
            yield engine
        finally:
            engine.dispose()


def service(session: Session, protocol: Protocol, when: str) -> AlertService:
    return AlertService(session, protocol=protocol, calendar=CAL,
                        clock=FixedClock(parse_instant(when, LONDON)), tz=LONDON,
                        notifier=NOTIFIER)


def history(engine: Engine, protocol: Protocol) -> None:
    """Alerts at every kind of stage, due around 8 March 2027; one answered, one held."""
    with db.transaction(engine) as s:
        svc = service(s, protocol, "2027-03-01T10:00")
        for ref, iro in (("R100", "iro.ada"), ("R101", "iro.ben"), ("R200", "iro.ben")):
            svc.raise_alert(iro, ref, f"No plan for {ref}")                   # informal
            for stage in ("stage1", "stage2", "stage3", "stage4"):
                svc.raise_alert(iro, ref, f"{stage} {ref}", stage=stage, separate=True)
    with db.transaction(engine) as s:
        svc = service(s, protocol, "2027-03-02T10:00")
        svc.respond(2, "tm.fay", "We are on it")
        svc.hold(3, "iro.ada", "Court hearing", until=date(2027, 3, 12))
        svc.acknowledge(4, "ad.kim")  # acknowledged: no reminder to acknowledge


def run(engine: Engine, protocol: Protocol, when: str) -> timescales.TimescaleReport:
    instant = parse_instant(when, LONDON)
    return timescales.run(engine, lambda s: service(s, protocol, when), protocol, CAL,
                          instant.astimezone(LONDON).date())


def state(engine: Engine) -> dict[str, Any]:
    with Session(engine) as s:
        alerts = [a.model_dump(exclude={"version"}) for a in
                  s.exec(select(Alert).order_by(col(Alert.id)))]
        events = [e.model_dump(exclude={"id"}) for e in
                  s.exec(select(Event).order_by(col(Event.alert_id), col(Event.seq)))]
        seq = {e.id: (e.alert_id, e.seq) for e in s.exec(select(Event))}
        mail = {}
        for m in s.exec(select(OutboxMessage)):
            event_id, who = m.key.split(":")
            if m.context is not None and not m.text_body:
                r = Renderer().render(m.message, load_context(m.context))
                m.subject, m.text_body, m.html_body = r.subject, r.text, r.html
            mail[(seq[int(event_id)], who)] = (m.message, m.to_addr, m.status, m.subject,
                                               m.text_body, m.html_body)
    return {"alerts": alerts, "events": events, "mail": mail}


@backends
def test_the_set_based_writer_does_what_the_service_layer_does(
    org: Engine, db_url: str, protocol: Protocol, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with second_database(db_url, tmp_path, protocol) as twin:
        for engine in (org, twin):
            history(engine, protocol)
        days = ("2027-03-05T08:00", "2027-03-09T08:00", "2027-03-09T13:00", "2027-03-16T08:00",
                "2027-03-23T08:00")
        bulk = [run(org, protocol, when).as_dict() for when in days]

        def refuse(*_args: Any) -> Any:
            raise StaleChunk("as if every chunk changed under the run")

        monkeypatch.setattr(Batch, "overdue", refuse)
        monkeypatch.setattr(Batch, "remind", refuse)
        monkeypatch.setattr(Batch, "remind_acknowledge", refuse)
        one_by_one = [run(twin, protocol, when).as_dict() for when in days]
        assert bulk == one_by_one
        counts = [r["counts"] for r in bulk]
        assert counts[0]["reminded"] > 0 and counts[1]["escalated"] > 0
        # Every stage not acknowledged after a working day but three: one answered, one held,
        # one acknowledged.
        assert counts[0]["ack_reminded"] == 15 - 3 and 4 not in bulk[0]["ack_reminded"]
        assert counts[1]["overdue_notices"] > 0 and counts[1]["cafcass_prompts"] > 0
        assert counts[2] == {k: 0 for k in counts[2]}  # the rerun
        a, b = state(org), state(twin)
        assert a["alerts"] == b["alerts"]
        assert a["events"] == b["events"]
        assert a["mail"].keys() == b["mail"].keys() and len(a["mail"]) > 50
        for key in a["mail"]:
            assert a["mail"][key] == b["mail"][key], key


def test_delivery_renders_bulk_rows_once_and_keeps_what_it_sent(
    org: Engine, protocol: Protocol, tmp_path: Path,
) -> None:
    history(org, protocol)
    with db.transaction(org) as s:
        s.exec(text("DELETE FROM outbox"))  # type: ignore[call-overload]
    run(org, protocol, "2027-03-09T08:00")
    with Session(org) as s:
        rows = list(s.exec(select(OutboxMessage)))
    assert rows and all(r.context and r.text_body == "" for r in rows)
    report = deliver(org, FileTransport(tmp_path / "mail", "drp@riverside.example"),
                     lambda: parse_instant("2027-03-09T08:05", LONDON))
    assert report.sent == len(rows)
    with Session(org) as s:
        sent = list(s.exec(select(OutboxMessage)))
    assert all(r.status == "sent" and r.subject and "https://drp.example/alerts/" in r.text_body
               for r in sent)
    written = sorted((tmp_path / "mail").iterdir())
    assert len(written) == len(rows)
    body = written[0].read_text()
    assert "Subject:" in body and "{{" not in body


@backends
def test_an_alert_changed_during_the_run_sends_its_chunk_through_the_service_layer(
    org: Engine, protocol: Protocol, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with db.transaction(org) as s:
        svc = service(s, protocol, "2027-03-01T10:00")
        ids = [int(svc.raise_alert("iro.ada", "R100", f"x{i}", stage="stage1",
                                   separate=True).id or 0) for i in range(5)]
    read = Batch._read
    calls = []

    def read_then_someone_responds(self: Batch, session: Session, chunk: list[int]) -> Any:
        rows = read(self, session, chunk)
        if not calls:  # the first time only: a manager answers alert 3 meanwhile
            calls.append(1)
            with db.transaction(org) as other:
                service(other, protocol, "2027-03-09T07:59").respond(ids[2], "tm.fay", "Done")
        return rows

    if org.dialect.name == "postgresql":
        # Rows read FOR UPDATE: the manager would wait for the run. Bump the version from the
        # run's own connection instead, as if it had happened just before the lock.
        def read_then_bump(self: Batch, session: Session, chunk: list[int]) -> Any:
            rows = read(self, session, chunk)
            if not calls:
                calls.append(1)
                session.connection().execute(
                    text("UPDATE alert SET version = version + 1 WHERE id = :i"), {"i": ids[2]})
            return rows

        monkeypatch.setattr(Batch, "_read", read_then_bump)
    else:
        monkeypatch.setattr(Batch, "_read", read_then_someone_responds)
    report = run(org, protocol, "2027-03-09T08:00")
    assert calls == [1]
    expected = ids if org.dialect.name == "postgresql" else [i for i in ids if i != ids[2]]
    assert report.escalated == expected and report.problems == []
    with Session(org) as s:
        escalations = s.exec(select(Event.alert_id).where(Event.kind == "auto_escalated")).all()
    assert sorted(escalations) == expected


def test_the_run_writes_in_a_few_statements_per_chunk(org: Engine, protocol: Protocol) -> None:
    from sqlalchemy import event

    with db.transaction(org) as s:
        svc = service(s, protocol, "2027-03-01T10:00")
        for i in range(60):
            svc.raise_alert(*(("iro.ada", "R100"), ("iro.ben", "R200"))[i % 2], f"x{i}",
                            stage="stage1", separate=True)
    with org.begin() as conn:  # a council whose rules have not changed since (due_index.come)
        conn.execute(text("UPDATE council SET attention_basis = :b"),
                     {"b": due_index.basis(protocol, CAL)})
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]).split()[0])

    event.listen(org, "before_cursor_execute", count)
    try:
        report = run(org, protocol, "2027-03-09T08:00")
    finally:
        event.remove(org, "before_cursor_execute", count)
    assert len(report.escalated) == 60
    # find the due set, and the reminders again; read the organisation, the chunk, its
    # actions and last events; one UPDATE, one INSERT of events, one of outbox rows: not one
    # statement per alert.
    assert len(statements) <= 20, statements


def test_each_chunk_reads_the_organisation_as_it_stands(
    org: Engine, protocol: Protocol, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`drp org load` between two chunks of a run: the later chunk escalates to the line as it
    now is (R200 moved to the east service, whose new head, hos.new, is told; not hos.jon)."""
    with db.transaction(org) as s:
        svc = service(s, protocol, "2027-03-01T10:00")
        first = int(svc.raise_alert("iro.ada", "R100", "x", stage="stage1").id or 0)
        second = int(svc.raise_alert("iro.ben", "R200", "y", stage="stage1").id or 0)
    monkeypatch.setattr(timescales, "BULK", 1)
    moved = (DATA / "org.yaml").read_text().replace(
        "{ref: R200, team: west-a,", "{ref: R200, team: east-a,").replace(
        "head_of_service: hos.ivy,", "head_of_service: hos.new,").replace(
        "services:", "  - {username: hos.new, name: New Head, email: new@riverside.example,"
        " roles: [head_of_service]}\nservices:")
    (tmp_path / "org.yaml").write_text(moved)
    original = Batch.overdue
    calls: list[int] = []

    def reorganise_before_the_second(self: Batch, session: Session, chunk: list[int]) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the chunk's transaction has read nothing yet
            with db.transaction(org) as other:
                load_org(other, tmp_path / "org.yaml", protocol)
        return original(self, session, chunk)

    monkeypatch.setattr(Batch, "overdue", reorganise_before_the_second)
    report = run(org, protocol, "2027-03-09T08:00")
    assert report.escalated == [first, second] and report.problems == []
    assert len(calls) == 2  # both chunks went through the set-based writer
    with Session(org) as s:
        told = {m.recipient for m in s.exec(select(OutboxMessage).where(
            OutboxMessage.alert_id == second, OutboxMessage.message == "escalated"))}
    assert "hos.new" in told and "hos.jon" not in told, told


@backends
def test_a_chunks_ids_go_to_postgresql_as_one_array(org: Engine) -> None:
    """A chunk's thousand ids: on PostgreSQL one array parameter (`= ANY`), which psycopg
    does not parse anew each time; elsewhere an IN list. Both select the rows named."""
    from sqlalchemy import event
    from sqlalchemy import select as sa_select

    person = Person.__table__  # type: ignore[attr-defined]
    sent: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    with org.connect() as conn:
        everyone = sorted(conn.execute(sa_select(person.c.id)).scalars())
        wanted = [*everyone[::2], *range(10_000, 10_000 + 1000 - len(everyone[::2]))]
        event.listen(org, "before_cursor_execute", keep)
        try:
            found = sorted(conn.execute(sa_select(person.c.id).where(
                db.among(conn, person.c.id, wanted))).scalars())
        finally:
            event.remove(org, "before_cursor_execute", keep)
    assert len(wanted) == 1000 and found == everyone[::2]
    statement, parameters = sent[-1]
    if org.dialect.name == "postgresql":
        assert "= ANY (" in statement and len(parameters) == 1, statement
    else:
        assert statement.count("?") == 1000


def test_a_chunks_json_document_writes_each_instant_as_given() -> None:
    """Instants equal as instants but given in other zones, or either side of a clock change
    (`fold`), keep their own offsets (each object is written once, not each equal value)."""
    import json as _json
    from zoneinfo import ZoneInfo

    from drp.rowsets import _json_rows

    london = ZoneInfo("Europe/London")
    utc = datetime(2027, 6, 9, 9, 0, tzinfo=UTC)
    first = datetime(2027, 10, 31, 1, 30, tzinfo=london)
    second = first.replace(fold=1)
    rows = [{"at": utc}, {"at": utc.astimezone(london)}, {"at": first}, {"at": second},
            {"at": utc}]
    assert [r["at"] for r in _json.loads(_json_rows(rows))] == [
        "2027-06-09T09:00:00+00:00", "2027-06-09T10:00:00+01:00",
        "2027-10-31T01:30:00+01:00", "2027-10-31T01:30:00+00:00",
        "2027-06-09T09:00:00+00:00"]
