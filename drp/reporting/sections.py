"""The report as a council reads it: sections of named tables (stage titles, team, service and
IRO names, never keys), the comparison the report asks for beside each figure that has one,
and a short narrative. Every human-readable format (HTML, Markdown, CSV, Word) renders these
same sections, so they cannot disagree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

# How a council reads Cafcass's responses (drp.alerts.commands.CAFCASS_RESPONSES' keys).
CAFCASS_RESPONSES = {"accepted": "Accepted the referral", "declined": "Declined the referral",
                     "proceedings": "Issued proceedings", "closed": "Closed its involvement"}


@dataclass
class Table:
    key: str  # a short name for the table, e.g. for a CSV file
    caption: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Section:
    key: str
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)  # chart keys (charts.py)


def day(iso: str) -> str:
    d = date.fromisoformat(iso)
    return f"{d.day} {d:%B %Y}"


def span(period: dict[str, str]) -> str:
    return f"{day(period['from'])} to {day(period['to'])}"


def short(period: dict[str, str]) -> str:
    a, b = date.fromisoformat(period["from"]), date.fromisoformat(period["to"])
    return f"{a.day} {a:%b %Y} to {b.day} {b:%b %Y}"


def month_name(key: str) -> str:
    return f"{date.fromisoformat(key + '-01'):%B %Y}"


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _delta(now: Any, before: Any) -> str:
    if isinstance(now, bool) or not isinstance(now, int | float) \
            or not isinstance(before, int | float):
        return "-"
    d = now - before
    if isinstance(d, float):
        d = round(d, 1)
        return "0.0" if d == 0 else f"{d:+.1f}"
    return "0" if d == 0 else f"{d:+d}"


def compared(r: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The periods the tables show beside this one, by --compare."""
    mode = r.get("compare", "previous")
    out = []
    if mode in ("previous", "both") and "previous" in r:
        out.append(("the previous period", r["previous"]))
    if mode in ("last-year", "both") and "previous_year" in r:
        out.append(("the same period a year earlier", r["previous_year"]))
    return out


Getter = Callable[[dict[str, Any]], Any]


def comparison(r: dict[str, Any], key: str, caption: str,
               rows: list[tuple[str, Getter]]) -> Table:
    """Figure, this period, then for each compared period its value and the change."""
    others = compared(r)
    columns = ["Figure", f"This period, {short(r['period'])}"]
    for label, other in others:
        columns += [f"{label[4].upper()}{label[5:]}, {short(other['period'])}", "Change"]
    body = []
    for label, get in rows:
        now = _get(get, r)
        row = [label, now]
        for _, other in others:
            before = _get(get, other)
            row += [before, _delta(now, before)]
        body.append(row)
    return Table(key, caption, columns, body)


def _get(get: Getter, r: dict[str, Any]) -> Any:
    try:
        return get(r)
    except (KeyError, TypeError):
        return None


def titles(r: dict[str, Any]) -> dict[str, str]:
    out = {s["key"]: s["title"] for s in r.get("stages", [])}
    out["cafcass"] = r.get("cafcass_title", "Referral to Cafcass")
    return out


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def narrative(r: dict[str, Any]) -> list[str]:
    """A few sentences a council can paste, every number taken from the figures."""
    f, informal = r["formal"], r["informal"]
    stage = titles(r)
    first = r["stages"][0]["title"] if r.get("stages") else "the first stage"
    text = [
        f"{plural(r['raised'], 'concern was', 'concerns were')} raised between"
        f" {day(r['period']['from'])} and {day(r['period']['to'])}"
        f" ({number(r['raised_monthly_average'])} a month), about"
        f" {plural(r['children'], 'child', 'children')}, {r['repeat_children']} of whom had"
        f" more than one. {plural(f['entered'], 'alert went', 'alerts went')} to a formal"
        f" stage ({f['raised_at_formal_stage']} raised at one, {f['escalated_from_informal']}"
        f" escalated from {first.lower()})."]
    if f["resolved"]:
        text.append(
            f"Of the {plural(f['resolved'], 'alert', 'alerts')} resolved at a formal stage,"
            f" {number(f['resolved_within_timescale_pct'])}% were resolved within the formal"
            f" timescale of {f['timescale_working_days']} working days;"
            f" {f['outstanding_at_end']} were at a formal stage at the end of the period.")
    else:
        text.append(f"No alert was resolved at a formal stage; {f['outstanding_at_end']} were"
                    " at a formal stage at the end of the period.")
    resolved = r["closed"]["resolved"]
    shares = r.get("resolved_at_stage_pct", {})
    if resolved:
        at = ", ".join(f"{number(v)}% at {stage.get(k, k)}" for k, v in shares.items())
        text.append(f"{plural(resolved, 'alert was', 'alerts were')} resolved ({at});"
                    f" {informal['outstanding_at_end']} were still at {first.lower()} and"
                    f" {r['outstanding_at_end']} open in all at the end of the period,"
                    f" {r['overdue_at_end']} of them overdue.")
    w = r["working_days_to_resolve"]
    if w["count"]:
        text.append(f"Resolution took a median of {number(w['median'])} working days (90% within"
                    f" {number(w['p90'])}).")
    main = r.get("main_theme")
    if main:
        share = r["theme_shares"][main]
        text.append(f"The main theme was {share['title']} ({number(share['share_pct'])}% of"
                    " concerns raised).")
    c = r["cafcass"]
    text.append(f"{plural(c['referred'], 'referral was', 'referrals were')} made to Cafcass and"
                f" {plural(r['holds']['count'], 'hold was', 'holds were')} begun; good practice"
                f" was recorded {plural(r['good_practice'], 'time', 'times')}.")
    for label, other in compared(r):
        diff = r["raised"] - other["raised"]
        how = ("the same number as" if diff == 0
               else f"{abs(diff)} {'more' if diff > 0 else 'fewer'} than")
        text.append(f"Concerns raised: {how} in {label}, {span(other['period'])}"
                    f" ({other['raised']}).")
    return text


def _reached(key: str) -> Getter:
    return lambda x: x["reached"][key]


def layout(r: dict[str, Any]) -> list[Section]:
    stage = titles(r)
    f = "formal"
    keys = [s["key"] for s in r["stages"]]
    first = r["stages"][0]["title"]
    out = [Section("headline", "Headline", narrative(r), [comparison(r, "headline", "Headline", [
        ("Concerns raised", lambda x: x["raised"]),
        ("Concerns raised, monthly average", lambda x: x["raised_monthly_average"]),
        ("Children with a concern raised", lambda x: x["children"]),
        ("Children with more than one concern", lambda x: x["repeat_children"]),
        ("Went to a formal stage", lambda x: x[f]["entered"]),
        ("Resolved", lambda x: x["closed"]["resolved"]),
        ("Withdrawn", lambda x: x["closed"]["withdrawn"]),
        ("Resolved within timescale (%)", lambda x: x["resolved_within_timescale_pct"]),
        ("Outstanding at the end of the period", lambda x: x["outstanding_at_end"]),
        ("Of those, overdue", lambda x: x["overdue_at_end"]),
        ("Referred to Cafcass", lambda x: x["cafcass"]["referred"]),
        ("Good practice recorded", lambda x: x["good_practice"]),
    ])], ["monthly"])]
    days = r[f]["timescale_working_days"]
    out.append(Section("formal", "Formal and informal", [
        f"The formal stages have {days} working days in all from the day an alert first"
        f" enters one; {first} has the due date the IRO sets."], [
        comparison(r, "formal", "The formal stages", [
            ("Went to a formal stage", lambda x: x[f]["entered"]),
            ("Raised at a formal stage", lambda x: x[f]["raised_at_formal_stage"]),
            (f"Escalated from {first.lower()}", lambda x: x[f]["escalated_from_informal"]),
            ("Resolved at a formal stage", lambda x: x[f]["resolved"]),
            (f"Of those, resolved within {days} working days (%)",
             lambda x: x[f]["resolved_within_timescale_pct"]),
            ("Withdrawn at a formal stage", lambda x: x[f]["withdrawn"]),
            ("At a formal stage at the end of the period", lambda x: x[f]["outstanding_at_end"]),
            ("Of those, overdue", lambda x: x[f]["overdue_at_end"]),
            ("Escalated automatically (a response was late)",
             lambda x: x["automatic_escalations"]),
            ("Agreed actions due", lambda x: x["actions"]["due"]),
            ("Agreed actions done on time (%)", lambda x: x["actions"]["done_on_time_pct"])]),
        comparison(r, "informal", first, [
            ("Raised at this stage", lambda x: x["informal"]["raised"]),
            ("Resolved at this stage", lambda x: x["informal"]["resolved"]),
            ("Of those, resolved by the due date the IRO set (%)",
             lambda x: x["informal"]["resolved_within_timescale_pct"]),
            ("Withdrawn at this stage", lambda x: x["informal"]["withdrawn"]),
            ("At this stage at the end of the period",
             lambda x: x["informal"]["outstanding_at_end"]),
            ("Of those, overdue", lambda x: x["informal"]["overdue_at_end"])])]))
    out.append(Section("stages", "By stage", [], [
        Table("stages", "Each stage", ["Stage", "Reached", "Monthly average",
                                       "Resolved at it", "Share of those resolved (%)",
                                       "Withdrawn at it"],
              [[stage.get(k, k), r["reached"].get(k, 0), r["reached_monthly_average"].get(k),
                r["resolved_by_stage"].get(k, 0), r["resolved_at_stage_pct"].get(k, 0.0),
                r["withdrawn_by_stage"].get(k, 0)] for k in keys]),
        comparison(r, "reached", "Alerts that reached each stage",
                   [(stage.get(k, k), _reached(k)) for k in [*keys, "cafcass"]])],
        ["funnel"]))
    counts = ["Raised", "Went formal", "Resolved", "Outstanding at end"]

    def figures(row: dict[str, Any]) -> list[Any]:
        return [row["raised"], row["entered_formal"], row["resolved"], row["outstanding_at_end"]]

    out.append(Section("teams", "By team and service", [], [
        Table("services", "By service", ["Service", *counts],
              [[s["name"], *figures(s)] for s in r["by_service"]]),
        Table("teams", "By team", ["Team", "Service", *counts],
              [[t["name"], t["service_name"], *figures(t)] for t in r["by_team"]])]))
    out.append(Section("iros", "By IRO", [], [
        Table("iros", "By IRO", ["IRO", *counts],
              [[i["name"], *figures(i)] for i in r["by_iro"]])]))
    months = r["by_month"]
    month_rows = [[month_name(m["month"]), m["raised"], m["entered_formal"], m["resolved"],
                   m["withdrawn"]] for m in months]
    if months:
        n = len(months)
        month_rows.append(["Monthly average", *(round(sum(row[i] for row in month_rows) / n, 1)
                                                for i in range(1, 5))])
    out.append(Section("months", "By month", [], [
        Table("months", "By month", ["Month", "Raised", "Went formal", "Resolved", "Withdrawn"],
              month_rows)]))
    w = r["working_days_to_resolve"]
    out.append(Section("time", "Time to resolve", [
        "Working days from raising to resolution, holds excluded, of the alerts resolved in"
        " the period, by the furthest stage each reached."], [
        Table("resolve", "Working days to resolve",
              ["Furthest stage reached", "Resolved", "Median", "90th percentile"],
              [["All", w["count"], w["median"], w["p90"]]]
              + [[stage.get(k, k), v["count"], v["median"], v["p90"]]
                 for k, v in w["by_stage_reached"].items()]),
        comparison(r, "resolve_compared", "Working days to resolve, compared", [
            ("Median", lambda x: x["working_days_to_resolve"]["median"]),
            ("90th percentile", lambda x: x["working_days_to_resolve"]["p90"])]),
        Table("responses", "Managers' responses: working days from entering a stage to the"
              " first response", ["Stage", "Responses", "Median", "90th percentile",
                                  "Timescale (working days)", "Within timescale (%)"],
              [[stage.get(k, k), v["count"], v["median"], v["p90"],
                v["timescale_working_days"], v["within_timescale_pct"]]
               for k, v in r["response_times"].items()])], ["time"]))
    out.append(Section("holds", "Holds", [
        "An IRO may put an alert on hold with a reason and an end date; working days on hold"
        " do not count on either clock."], [
        comparison(r, "holds", "Holds", [
            ("Holds begun", lambda x: x["holds"]["count"]),
            ("Alerts held", lambda x: x["holds"]["alerts"]),
            ("Working days held", lambda x: x["holds"]["working_days"]),
            ("Median working days a hold lasted", lambda x: x["holds"]["median_working_days"]),
            ("On hold at the end of the period", lambda x: x["holds"]["on_hold_at_end"])])]))
    responses = sorted({*r["cafcass"]["responses"],
                        *(k for _, o in compared(r) for k in o["cafcass"]["responses"])})
    out.append(Section("cafcass", "Cafcass", [
        "A referral to Cafcass runs alongside the local process: the alert stays open."], [
        comparison(r, "cafcass", "Referrals to Cafcass", [
            ("Referrals made", lambda x: x["cafcass"]["referred"]),
            *((f"Cafcass's response: {CAFCASS_RESPONSES.get(k, k)}",
               lambda x, k=k: x["cafcass"]["responses"].get(k, 0)) for k in responses),
            *((f"Referred from {stage.get(k, k)}",
               lambda x, k=k: x["referred_from_stage"].get(k, 0))
              for k in r["referred_from_stage"]),
            ("Reached the director", lambda x: x["referred_to_director"])])]))
    team_names = {t["team"]: t["name"] for t in r["by_team"]}
    team_names.update({t["team"]: t["name"] for t in r["team_themes"]})
    out.append(Section("good_practice", "Good practice", [
        f"Good practice was recorded {plural(r['good_practice'], 'time', 'times')}; it is"
        " counted apart from every figure about concerns."], [
        Table("good_practice", "Good practice by team", ["Team", "Recorded"],
              [[r.get("team_names", {}).get(k, team_names.get(k, k)), n]
               for k, n in r["good_practice_by_team"].items()])]))
    themes = list(r["themes"])
    theme_title = r.get("theme_titles", {})
    out.append(Section("themes", "Themes", [], [
        Table("themes", "Concerns raised by theme", ["Theme", "Raised", "Share (%)"],
              [[s["title"], s["count"], s["share_pct"]] for s in r["theme_shares"].values()]
              + [["Not set", r["themes_not_set"], None]]),
        Table("team_themes", "Concerns raised by team and theme",
              ["Team", *(theme_title.get(k, k) for k in themes), "Not set"],
              [[t["name"], *(t["themes"].get(k, 0) for k in themes), t["not_set"]]
               for t in r["team_themes"]])], ["themes"]))
    return out
