"""Sample data for `drp mail preview`: every key any message uses, with made-up values."""

from __future__ import annotations

from datetime import date
from typing import Any

from .render import Renderer

PARTS = {
    "responsible": "the person asked to respond",
    "iro": "the child's IRO",
    "copy": "a copy for information",
    "iro_manager": "an IRO manager",
    "owner": "the owner of the agreed action",
}


def sample_context(role: str = "responsible") -> dict[str, Any]:
    if role not in PARTS:
        raise KeyError(f"there is no role {role!r}; use one of {', '.join(PARTS)}")
    return {
        "council": "Exampleshire County Council",
        "alert": {
            "id": 17, "child": "C1001", "team": "North Team 1", "stage": "stage2",
            "stage_title": "Stage 2: Head of service", "stage_short": "Stage 2",
            "stage_due": date(2026, 3, 9), "resolution_due": date(2026, 3, 30),
            "summary": "No social work report shared before the child's review",
            "url": "http://127.0.0.1:8000/alerts/17",
        },
        "link": "http://127.0.0.1:8000/alerts/17", "link_text": "View alert 17",
        "recipient": {"name": "Helen Smith", "part": PARTS[role]},
        "role": role,
        # what this reader is asked to do at the stage now (drp.notify.Notifier.asks)
        "asked_to_respond": role == "responsible", "asked_to_acknowledge": role == "responsible",
        "newly_asked": role == "responsible", "stage_answered": False,
        "actor": "Asha Patel",
        "responsible": "Helen Smith",
        "from_title": "Stage 1: Team manager",
        "automatic": False,
        "when_overdue": "escalate",
        "stage_entered": date(2026, 3, 2),
        "resolution_working_days": 20,
        "raised_on": date(2026, 2, 23),
        "actions_agreed": 2, "first_action_due": date(2026, 3, 13), "outstanding_actions": 1,
        "hold_until": date(2026, 4, 20), "held_working_days": 3,
        "previous_due": date(2026, 3, 6),
        "action_no": 1, "action_due": date(2026, 3, 13), "action_owner": "Tom Jones",
        "formal": True, "cafcass_response": "accepted the referral",
        # a cover period (not about one alert)
        "cover": {"person": "Helen Smith", "deputy": "Ravi Shah", "starts": date(2026, 3, 2),
                  "ends": date(2026, 3, 13), "reason": "Annual leave"},
        # a transfer (transferred)
        "transfer": {"was": {"team": "North Team 2", "iro": "Sam Okoro",
                             "responsible": "Tom Jones"},
                     "now": {"team": "North Team 1", "iro": "Asha Patel",
                             "responsible": "Helen Smith"},
                     "iro_changed": True, "team_changed": True},
        # the digest
        "scope": "North Locality", "fortnight": date(2026, 3, 2), "today": date(2026, 3, 2),
        "overdue": 1, "totals": None, "sections": None,
        "rows": [
            {"id": 17, "child": "C1001", "team": "North Team 1",
             "stage_title": "Stage 2: Head of service", "days_open": 12,
             "stage_due": date(2026, 2, 27), "overdue": True,
             "theme": "Accountability and record keeping",
             "last_kind": "escalated", "last_on": date(2026, 2, 20), "referred_on": None,
             "url": "http://127.0.0.1:8000/alerts/17"},
            {"id": 21, "child": "C1004", "team": "North Team 2",
             "stage_title": "Informal resolution", "days_open": 2,
             "stage_due": date(2026, 3, 6), "overdue": False, "theme": None,
             "last_kind": "raised", "last_on": date(2026, 2, 26), "referred_on": None,
             "url": "http://127.0.0.1:8000/alerts/21"},
        ],
    }


def preview_all(renderer: Renderer) -> dict[str, str]:
    """Every message's subject with the sample data (a quick check of a council's wording)."""
    return {m: renderer.render(m, sample_context()).subject for m in renderer.messages()}
