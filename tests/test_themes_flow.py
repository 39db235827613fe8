"""The themes flow's work (drp.categorise): a suggestion once per alert, never on a closed
alert, in transactions of a chunk each, so one alert that cannot take a suggestion is named
and the rest go on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from drp import db
from drp.categorise import _suggest_all, categorise
from drp.classifier import Suggestion
from drp.clock import FixedClock, parse_instant
from drp.models import Alert, Event
from drp.runtime import Runtime, runtime

from .support import databases

VAGUE = "please look at this"  # the classifier is unsure of it
CLEAR = "Pathway plan not started at 17 and no personal adviser allocated"


@pytest.fixture
def rt(drp_env: Path) -> Runtime:
    rt = runtime()
    databases.migrate(rt.engine, "org")  # tests/data/org.yaml, as the template has it
    return rt


def act(rt: Runtime, when: str, fn: Any) -> Any:
    with db.transaction(rt.engine) as s:
        svc = rt.service(s, FixedClock(parse_instant(when, rt.settings.tz)))
        svc.suggester = None  # raised as with no classifier at hand: no suggestion yet
        return fn(svc)


def night(rt: Runtime, when: str) -> dict[str, Any]:
    return categorise(rt, FixedClock(parse_instant(when, rt.settings.tz)))


def suggested(rt: Runtime) -> Counter[int]:
    with Session(rt.engine) as s:
        return Counter(e.alert_id for e in s.exec(
            select(Event).where(Event.kind == "theme_suggested")))


def raise_(rt: Runtime, ref: str, iro: str, text: str, separate: bool = False) -> int:
    return int(act(rt, "2027-03-01T10:00", lambda s: s.raise_alert(
        iro, ref, text, separate=separate)).id)


def test_a_suggestion_once_per_alert_and_never_on_a_closed_one(rt: Runtime) -> None:
    vague = raise_(rt, "R100", "iro.ada", VAGUE)
    clear = raise_(rt, "R200", "iro.ben", CLEAR)
    withdrawn = raise_(rt, "R101", "iro.ben", VAGUE)
    resolved = raise_(rt, "R100", "iro.ada", CLEAR + " again", separate=True)
    act(rt, "2027-03-01T11:00", lambda s: s.withdraw(withdrawn, "iro.ben", "Raised in error"))
    act(rt, "2027-03-01T11:00", lambda s: s.resolve(resolved, "iro.ada", "Sorted"))
    first = night(rt, "2027-03-02T01:30")
    assert first["categorised"] == [clear] and first["unsure"] == [vague]
    assert first["problems"] == []
    assert suggested(rt) == {vague: 1, clear: 1}
    # The next nights: the unsure alert waits for its IRO; nothing is written again.
    for when in ("2027-03-03T01:30",):
        again = night(rt, when)
        assert again["categorised"] == again["unsure"] == []
        assert again["unthemed"] == [vague] and again["suggested_before"] == [vague]
    assert suggested(rt) == {vague: 1, clear: 1}


def test_one_alert_that_cannot_take_a_suggestion_does_not_undo_the_night(rt: Runtime) -> None:
    ids = [raise_(rt, ref, iro, CLEAR) for ref, iro in
           (("R100", "iro.ada"), ("R101", "iro.ben"), ("R200", "iro.ben"))]
    broken, touched = ids[1], ids[2]
    with db.transaction(rt.engine) as s:  # a stage no protocol knows: its machine refuses
        s.execute(update(Alert).where(Alert.id == broken).values(stage="stage9"))  # type: ignore[arg-type]
    # The IRO acts seconds after the flow's instant: that one waits for the next night.
    act(rt, "2027-03-02T01:30:05", lambda s: s.acknowledge(touched, "tm.gus"))
    result = night(rt, "2027-03-02T01:30")
    assert result["categorised"] == [ids[0]]
    assert len(result["problems"]) == 1 and result["problems"][0].startswith(f"{broken}: ")
    assert suggested(rt) == {ids[0]: 1}
    assert night(rt, "2027-03-03T01:30")["categorised"] == [touched]


def test_two_overlapping_nights_suggest_once(rt: Runtime) -> None:
    """The once-per-alert rule is the service's: a run that listed the alert before another
    run's suggestion committed writes nothing (nor does a suggestion on a closed alert)."""
    vague = raise_(rt, "R100", "iro.ada", VAGUE)
    closed = raise_(rt, "R101", "iro.ben", VAGUE)
    act(rt, "2027-03-01T11:00", lambda s: s.withdraw(closed, "iro.ben", "Raised in error"))
    unsure = Suggestion(theme="funding", confidence=0.3, unsure=True)
    at = [FixedClock(parse_instant(t, rt.settings.tz))
          for t in ("2027-03-02T01:30:00", "2027-03-02T01:30:02")]
    first = _suggest_all(rt, at[0], [(vague, unsure), (closed, unsure)])
    second = _suggest_all(rt, at[1], [(vague, unsure), (closed, unsure)])
    assert first == {"done": [(vague, False)], "not_yet": [], "problems": []}
    assert second == {"done": [], "not_yet": [], "problems": []}
    assert suggested(rt) == {vague: 1}
    sure = Suggestion(theme="funding", confidence=0.9, unsure=False)
    assert act(rt, "2027-03-02T09:00", lambda s: s.suggest_theme(vague, sure)) is None
    assert act(rt, "2027-03-02T09:00", lambda s: s.suggest_theme(closed, sure)) is None
    assert suggested(rt) == {vague: 1}


def test_an_alert_touched_long_after_the_nights_instant_is_a_problem(rt: Runtime) -> None:
    soon, late = (raise_(rt, ref, iro, CLEAR) for ref, iro in (("R100", "iro.ada"),
                                                                ("R200", "iro.ben")))
    # One acted on while the night ran; one by someone running drp with --now years ahead.
    act(rt, "2027-03-02T01:30:05", lambda s: s.acknowledge(soon, "tm.fay"))
    act(rt, "2030-01-01T10:00", lambda s: s.acknowledge(late, "tm.gus"))
    result = night(rt, "2027-03-02T01:30")
    assert result["categorised"] == [] and result["not_yet"] == [soon]
    assert len(result["problems"]) == 1, result["problems"]
    assert result["problems"][0].startswith(f"{late}: ")
    assert "1 Jan 2030" in result["problems"][0]
    assert "--now in the future" in result["problems"][0]
    assert f"- not yet (touched after the night's instant): {soon}\n" in result["markdown"]
    assert f"- problem: {late}: " in result["markdown"]
