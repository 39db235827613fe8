"""The themes flow's work: retrain on the corpus and the council's confirmed themes, then
suggest a theme for each alert that has none, through the service layer.

Once per alert and never on a closed one: the service's rule (SystemActions.suggest_theme,
re-checked in the writing transaction, so two overlapping runs write one suggestion); the
listing here only leaves out what it would refuse. In transactions of CHUNK alerts: if one
alert cannot take its suggestion, the chunk is redone an alert at a time, that one is named in
`problems` and the rest are saved; one a person touched while the flow ran waits for the next
night (`clock.during_run`), one with an event later still is a problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from . import db
from .alerts.system import CLOSED
from .alerts.unit import alone
from .clock import Clock
from .models import Alert, Event
from .runtime import Runtime

if TYPE_CHECKING:
    from .alerts import AlertService
    from .classifier import Suggestion

CHUNK = 200


def categorise(rt: Runtime, clock: Clock) -> dict[str, Any]:
    classifier = rt.classifier(retrain=True)
    already = exists().where(col(Event.alert_id) == col(Alert.id),
                             col(Event.kind) == "theme_suggested")
    with Session(rt.engine) as session:
        rows = session.execute(
            # Concerns only: a good-practice record has no theme to suggest.
            sa_select(col(Alert.id), col(Alert.summary), col(Alert.detail),
                      col(Alert.impact), already)
            .where(col(Alert.theme).is_(None), col(Alert.theme_confirmed).is_(False),
                   col(Alert.kind) == "concern", col(Alert.status).not_in(CLOSED))
            .order_by(col(Alert.id))).all()
    unthemed = [aid for aid, *_ in rows if aid is not None]
    before = [aid for aid, *_, done in rows if aid is not None and done]
    todo = [(aid, " ".join(t for t in (summary, detail, impact) if t))
            for aid, summary, detail, impact, done in rows if aid is not None and not done]
    suggestions = classifier.suggest_many([text for _, text in todo])
    outcome = _suggest_all(rt, clock, [(aid, s) for (aid, _), s in
                                       zip(todo, suggestions, strict=True)])
    categorised = [aid for aid, sure in outcome["done"] if sure]
    unsure = [aid for aid, sure in outcome["done"] if not sure]
    problems: list[str] = outcome["problems"]
    markdown = (
        f"# Themes\n\nTrained on {classifier.trained_on} examples"
        f" ({classifier.own_labels} of them this council's confirmed themes).\n\n"
        f"- categorised: {', '.join(map(str, categorised)) or 'none'}\n"
        f"- unsure, left for the IRO: {', '.join(map(str, unsure)) or 'none'}\n"
        f"- suggested on an earlier night, left for the IRO: {len(before)}\n"
        f"- not yet (touched after the night's instant):"
        f" {', '.join(map(str, outcome['not_yet'])) or 'none'}\n"
        + "".join(f"- problem: {p}\n" for p in problems))
    return {"unthemed": unthemed, "categorised": categorised, "unsure": unsure,
            "suggested_before": before, "not_yet": outcome["not_yet"], "problems": problems,
            "trained_on": classifier.trained_on, "own_labels": classifier.own_labels,
            "markdown": markdown}


def _suggest_all(rt: Runtime, clock: Clock, items: list[tuple[int, Suggestion]]
                 ) -> dict[str, Any]:
    done: list[tuple[int, bool]] = []
    not_yet: list[int] = []
    problems: list[str] = []

    def suggest(svc: AlertService, aid: int, suggestion: Suggestion) -> tuple[int, bool] | None:
        # Re-checked in this transaction: closed, themed or suggested since the list was read
        # (another run), nothing.
        sure = svc.suggest_theme(aid, suggestion)
        return None if sure is None else (aid, sure)

    def one(aid: int, suggestion: Suggestion) -> None:
        result = alone(rt.engine, lambda session: suggest(rt.service(session, clock), aid,
                                                          suggestion),
                       aid, run="night", not_yet=lambda: not_yet.append(aid),
                       problem=problems.append)
        if result is not None:
            done.append(result)

    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        try:
            results: list[tuple[int, bool] | None] = []
            with db.transaction(rt.engine) as session:
                svc = rt.service(session, clock)
                results = [suggest(svc, aid, s) for aid, s in chunk]
            done.extend(r for r in results if r is not None)
        except Exception:  # redone an alert at a time, where each is reported
            _each(chunk, one)
    return {"done": done, "not_yet": not_yet, "problems": problems}


def _each(chunk: list[tuple[int, Suggestion]], one: Callable[[int, Suggestion], None]) -> None:
    for aid, suggestion in chunk:
        one(aid, suggestion)
