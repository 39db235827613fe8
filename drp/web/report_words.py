"""The report page's definitions in the words its tables use: each figure's title as a table
names it (a caption, a row or a column of drp.reporting.sections), never its key in the JSON
(`resolved_by_stage`, `themes_not_set`). The definitions themselves are
drp.reporting.definitions'; only their names are translated here, for the page."""

from __future__ import annotations

import re
from typing import Any

# Each figure's key, as the tables of the report name it. `{first}` is the first stage's title.
FIGURE_TITLES = {
    "raised": "Concerns raised",
    "reached": "Alerts that reached each stage",
    "reached_monthly_average": "Each stage: monthly average",
    "raised_monthly_average": "Concerns raised, monthly average",
    "closed": "Resolved and withdrawn",
    "resolved_by_stage": "Each stage: resolved at it",
    "withdrawn_by_stage": "Each stage: withdrawn at it",
    "resolved_at_stage_pct": "Each stage: share of those resolved (%)",
    "resolved_informally_or_first_formal_pct":
        "Resolved at the first stage or the first formal stage (%)",
    "resolved_within_timescale_pct": "Resolved within timescale (%)",
    "resolved_within_stage_timescale_pct": "Resolved within the stage's timescale (%)",
    "formal": "The formal stages",
    "informal": "{first}",
    "working_days_to_resolution": "Working days to resolve (median and 90th percentile)",
    "working_days_to_resolve": "Working days to resolve",
    "response_times": "Managers' responses",
    "automatic_escalations": "Escalated automatically (a response was late)",
    "outstanding_at_end": "Outstanding at the end of the period",
    "overdue_at_end": "Overdue at the end of the period",
    "themes": "Concerns raised by theme",
    "themes_not_set": "Not set (concerns raised by theme)",
    "team_themes": "Concerns raised by team and theme",
    "by_team": "By team",
    "by_service": "By service",
    "by_iro": "By IRO",
    "by_month": "By month",
    "children": "Children with a concern raised",
    "repeat_children": "Children with more than one concern",
    "holds": "Holds",
    "actions": "Agreed actions",
    "referred_to_director": "Reached the director",
    "referred_to_cafcass": "Referrals made",
    "referred_from_stage": "Referred from each stage",
    "cafcass": "Referrals to Cafcass",
    "good_practice": "Good practice recorded",
    "good_practice_by_team": "Good practice by team",
    "outcomes": "Outcomes",
    "previous": "Compared with the previous period",
    "previous_year": "Compared with a year earlier",
}
_CODE = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")


def figure_title(key: str, report: dict[str, Any]) -> str:
    stages = report.get("stages") or [{}]
    first = str(stages[0].get("title", "The first stage"))
    title = FIGURE_TITLES.get(key)
    if title is None:
        return key.replace("_", " ").capitalize()
    return title.format(first=first)


def definitions(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, definition) for each figure of the report, the key names in its text replaced
    by their titles in quotation marks."""
    def words(text: str) -> str:
        text = _CODE.sub(lambda m: f"\u201c{figure_title(m.group(0), report)}\u201d", text)
        return text[:1].upper() + text[1:]

    return [(figure_title(key, report), words(str(text)))
            for key, text in report.get("definitions", {}).items()]
