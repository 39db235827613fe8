"""The Cafcass referral form's fields, every problem at once, each by the service layer's own
rule (drp.alerts.inputs, GOV.UK's date input): what `AlertService.refer` is then given."""

from __future__ import annotations

from typing import Any

from ..alerts import inputs
from .forms import Problems, date_input


def referral_fields(form: dict[str, str], who: str) -> dict[str, Any]:
    """The referral's reason, legal advice and the date of the advice as typed (refer.html),
    or FormProblems listing each field's problem. The service checks them again when it
    refers (the advice is required there, and its date may not be after today)."""
    problems = Problems(who=who)
    advice = problems.check("legal_advice", lambda: inputs.text(
        form.get("legal_advice"), "who gave the legal advice", required=True,
        limit=inputs.LEGAL_ADVICE_MAX))
    advised_on = problems.check("advised_on", lambda: date_input(
        form, "advised_on", "the date of the advice"))
    problems.check("reason", lambda: inputs.text(
        form.get("reason"), "why the child's case is referred", required=True,
        limit=inputs.TEXT_MAX))
    problems.raise_any()
    return {"reason": form.get("reason", ""), "legal_advice": advice, "advised_on": advised_on}
