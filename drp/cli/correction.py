"""`drp alert correct`: an inaccurate text replaced, with the reason (drp.correction)."""

from typing import Annotated

import typer

from .. import correction
from .shared import AlertId, As, Json, Now, act

FIELD_HELP = ("What to correct: summary, detail, impact, outcome_wanted, or response (with"
              " --response, its number on the timeline).")


def alert_correct(
    alert_id: AlertId, as_: As,
    field: Annotated[str, typer.Option("--field", help=FIELD_HELP)],
    text: Annotated[str, typer.Option("--text", help="The corrected text, whole.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the text was wrong.")],
    response: Annotated[int | None, typer.Option(
        "--response", min=1, help="The response's number on the timeline (field response).")
    ] = None,
    now: Now = None, as_json: Json = False,
) -> None:
    """Correct an inaccurate text (the alert's IRO, their recorded cover, or an IRO manager):
    the original is kept in the correction record until retention removes it, and the
    correction shows on the timeline."""
    act(alert_id, as_, now, as_json,
        lambda alerts: correction.correct(alerts, alert_id, as_, field, text, reason,
                                          response=response),
        lambda view: f"Alert {view.id}: the {field.replace('_', ' ')} is corrected.")
