"""Two people acting on one alert at once: one wins, the other is told who changed it and
when; no update is ever lost (optimistic concurrency on the alert's version)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from drp import db
from drp.alerts import AlertService
from drp.calendar import WorkingCalendar
from drp.clock import FixedClock, parse_instant
from drp.errors import Conflict, InvalidTransition
from drp.ladder.protocol import Protocol
from drp.models import Alert, Event, Referral

from .conftest import LONDON, backends

RESPONDERS = ["tm.fay", "hos.ivy", "ad.kim", "dcs.lou", "sw.dan", "tm.fay", "hos.ivy", "ad.kim"]


def service(engine: Engine, protocol: Protocol, session: Any, when: str) -> AlertService:
    return AlertService(session, protocol=protocol, calendar=WorkingCalendar(),
                        clock=FixedClock(parse_instant(when, LONDON)), tz=LONDON)


def raise_one(engine: Engine, protocol: Protocol) -> int:
    with db.transaction(engine) as s:
        alert = service(engine, protocol, s, "2027-03-01T09:00").raise_alert(
            "iro.ada", "R100", "Concurrency")
        return int(alert.id or 0)


def counts(engine: Engine, aid: int) -> tuple[int, int]:
    with db.transaction(engine) as s:
        alert = s.get(Alert, aid)
        assert alert is not None
        n = s.exec(select(func.count()).select_from(Event).where(Event.alert_id == aid)).one()
        return alert.version, n


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_one_of_several_simultaneous_responses_wins_the_rest_are_told(
    org: Engine, protocol: Protocol, monkeypatch: pytest.MonkeyPatch
) -> None:
    aid = raise_one(org, protocol)
    barrier = threading.Barrier(len(RESPONDERS))
    original = AlertService._load

    def load_then_wait(self: AlertService, alert_id: int, actor: Any) -> Any:
        loaded = original(self, alert_id, actor)
        barrier.wait(timeout=30)  # everyone has read version 1 before anyone writes
        return loaded

    monkeypatch.setattr(AlertService, "_load", load_then_wait)

    def respond(who: str) -> str:
        try:
            with db.transaction(org) as s:
                service(org, protocol, s, "2027-03-02T09:00").respond(aid, who, f"from {who}")
            return "ok"
        except Conflict as exc:
            assert "was changed by" in str(exc) and "2027-03-02 09:00" in str(exc)
            return "conflict"

    with ThreadPoolExecutor(len(RESPONDERS)) as pool:
        results = Counter(pool.map(respond, RESPONDERS))
    assert results == {"ok": 1, "conflict": len(RESPONDERS) - 1}
    assert counts(org, aid) == (2, 2)  # one response recorded, nothing half-written


@backends
def test_a_referral_sent_twice_at_once_is_recorded_once(
    org: Engine, protocol: Protocol, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The IRO's double click: both requests read the alert unreferred; one referral is
    recorded, the other is told of the change (a Conflict, not a database error), or, where
    it read the referral table after the first committed (SQLite reads outside a write see
    the newest commit), that the alert has been referred already: refused either way."""
    aid = raise_one(org, protocol)
    barrier = threading.Barrier(2)
    original = AlertService._load

    def load_then_wait(self: AlertService, alert_id: int, actor: Any) -> Any:
        loaded = original(self, alert_id, actor)
        barrier.wait(timeout=30)  # both have read the alert before either writes
        return loaded

    monkeypatch.setattr(AlertService, "_load", load_then_wait)

    def refer(i: int) -> str:
        try:
            with db.transaction(org) as s:
                service(org, protocol, s, "2027-03-02T09:00").refer(
                    aid, "iro.ada", f"Referral {i}", legal_advice="Legal services")
            return "ok"
        except Conflict as exc:
            assert "was changed by iro.ada" in str(exc)
            return "refused"
        except InvalidTransition as exc:
            assert "already been referred to Cafcass" in str(exc)
            return "refused"

    with ThreadPoolExecutor(2) as pool:
        results = Counter(pool.map(refer, range(2)))
    assert results == {"ok": 1, "refused": 1}
    assert counts(org, aid) == (2, 2)
    with db.transaction(org) as s:
        assert s.exec(select(func.count()).select_from(Referral)).one() == 1


WORKERS = 8
WRITES = 5          # each worker's responses, every one retried until it is saved
MAX_ATTEMPTS = 500  # per response: far more than eight workers need; reaching it is a failure


@backends
def test_no_update_is_lost_under_contention(org: Engine, protocol: Protocol) -> None:
    """Eight workers each save five responses to one alert, retrying on Conflict. Optimistic
    concurrency must let every retried write through in the end (someone always wins each
    round), so all forty are saved, each once, and every attempt either saved its response or
    was told of a conflict. Any other exception in a worker fails the test."""
    aid = raise_one(org, protocol)
    saved: list[str] = []
    attempts: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(WORKERS)

    def worker(i: int) -> None:
        who = RESPONDERS[i % len(RESPONDERS)]
        start.wait(timeout=60)  # all at once, so the writes contend
        for j in range(WRITES):
            tag = f"{i}-{j}"
            for _attempt in range(MAX_ATTEMPTS):
                with lock:
                    attempts[tag] += 1
                try:
                    with db.transaction(org) as s:
                        service(org, protocol, s, "2027-03-02T09:00").respond(aid, who, tag)
                except Conflict:
                    with lock:
                        conflicts[tag] += 1
                    continue
                with lock:
                    saved.append(tag)
                break
            else:
                raise AssertionError(f"worker {i}: response {tag} not saved in"
                                     f" {MAX_ATTEMPTS} attempts, every one a Conflict")

    # The pool re-raises a worker's exception from .result(): none can vanish.
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(worker, i) for i in range(WORKERS)]
        for future in futures:
            future.result(timeout=300)

    expected = {f"{i}-{j}" for i in range(WORKERS) for j in range(WRITES)}
    assert sorted(saved) == sorted(expected)  # every response saved, and saved once
    assert sum(attempts.values()) == len(saved) + sum(conflicts.values())
    version, events = counts(org, aid)
    with db.transaction(org) as s:
        comments = list(s.exec(select(Event.comment).where(Event.alert_id == aid)
                               .where(Event.kind == "responded")).all())
    assert sorted(c or "" for c in comments) == sorted(expected)  # in the log, each once
    assert events == 1 + WORKERS * WRITES  # raised + forty responses
    assert version == 1 + WORKERS * WRITES  # 1 once raised (one INSERT), +1 per response
