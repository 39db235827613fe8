"""The themes flow's work: retrain on the corpus and the council's confirmed themes, then
suggest a theme for every alert that has none, through the service layer."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from . import db
from .clock import Clock
from .models import Alert
from .runtime import Runtime


def categorise(rt: Runtime, clock: Clock) -> dict[str, Any]:
    classifier = rt.classifier(retrain=True)
    with Session(rt.engine) as session:
        rows = session.exec(
            # Concerns only: a good-practice record has no theme to suggest.
            select(Alert).where(col(Alert.theme).is_(None), col(Alert.theme_confirmed).is_(False),
                                Alert.kind == "concern")
            .order_by(col(Alert.id))).all()
        todo = [(a.id, " ".join(t for t in (a.summary, a.detail, a.impact) if t))
                for a in rows if a.id is not None]
    suggestions = classifier.suggest_many([text for _, text in todo])
    categorised: list[int] = []
    unsure: list[int] = []
    with db.transaction(rt.engine) as session:
        svc = rt.service(session, clock)
        for (aid, _), suggestion in zip(todo, suggestions, strict=True):
            assert aid is not None
            (categorised if svc.suggest_theme(aid, suggestion) else unsure).append(aid)
    markdown = (
        f"# Themes\n\nTrained on {classifier.trained_on} examples"
        f" ({classifier.own_labels} of them this council's confirmed themes).\n\n"
        f"- categorised: {', '.join(map(str, categorised)) or 'none'}\n"
        f"- unsure, left for the IRO: {', '.join(map(str, unsure)) or 'none'}\n")
    return {"unthemed": [aid for aid, _ in todo], "categorised": categorised,
            "unsure": unsure, "trained_on": classifier.trained_on,
            "own_labels": classifier.own_labels, "markdown": markdown}
