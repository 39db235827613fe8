"""The dispute report in the formats managers use: JSON (stable, documented), a single
self-contained HTML file with SVG charts that prints well and pastes into Word, Markdown and
CSV."""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

LABELS = {
    "raised": "Alerts raised",
    "automatic_escalations": "Automatic escalations",
    "outstanding_at_end": "Outstanding at the end of the period",
    "overdue_at_end": "Of those, overdue",
    "resolved_informally_or_first_formal_pct": "Resolved informally or at the first formal"
                                               " stage (%)",
    "resolved_within_timescale_pct": "Resolved within timescale: the formal 20 working days,"
                                     " or the informal due date (%)",
    "resolved_within_stage_timescale_pct": "Resolved within the stage's timescale (%)",
    "referred_to_director": "Reached the director",
    "referred_to_cafcass": "Referred to Cafcass (alongside the local process)",
    "good_practice": "Good practice recorded",
}


def rows(r: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(figure, this period, previous period), flat, in reading order."""
    p = r.get("previous", {})
    out: list[tuple[str, Any, Any]] = []
    for key, label in LABELS.items():
        out.append((label, r.get(key), p.get(key)))
    for s, n in r["reached"].items():
        out.append((f"Reached {s}", n, p.get("reached", {}).get(s)))
    for k, n in r["closed"].items():
        out.append((f"Closed: {k}", n, p.get("closed", {}).get(k)))
    for s, n in r["resolved_by_stage"].items():
        out.append((f"Resolved at {s}", n, p.get("resolved_by_stage", {}).get(s)))
    for k, n in r["cafcass"]["responses"].items():
        out.append((f"Cafcass's response: {k}", n,
                    p.get("cafcass", {}).get("responses", {}).get(k)))
    w, pw = r["working_days_to_resolution"], p.get("working_days_to_resolution", {})
    out.append(("Working days to resolution, median", w["median"], pw.get("median")))
    out.append(("Working days to resolution, 90th percentile", w["p90"], pw.get("p90")))
    a, pa = r["actions"], p.get("actions", {})
    out.append(("Agreed actions due", a["due"], pa.get("due")))
    out.append(("Agreed actions done on time (%)", a["done_on_time_pct"],
                pa.get("done_on_time_pct")))
    for k, n in r["themes"].items():
        out.append((f"Theme: {r['theme_shares'][k]['title']}", n,
                    p.get("themes", {}).get(k)))
    return out


def to_json(r: dict[str, Any]) -> str:
    return json.dumps(r, indent=2, ensure_ascii=False) + "\n"


def to_csv(r: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["figure", f"{r['period']['from']} to {r['period']['to']}",
                     f"{r['previous']['period']['from']} to {r['previous']['period']['to']}"])
    for label, now, before in rows(r):
        writer.writerow([label, "" if now is None else now, "" if before is None else before])
    return buffer.getvalue()


def to_md(r: dict[str, Any]) -> str:
    p = r["previous"]["period"]
    lines = [f"# Dispute resolution, {r['period']['from']} to {r['period']['to']}", "",
             f"Protocol: {r['protocol']}. Themes: {r['taxonomy']}.", "",
             f"| Figure | This period | Previous ({p['from']} to {p['to']}) |", "|---|---|---|"]
    for label, now, before in rows(r):
        lines.append(f"| {label} | {'-' if now is None else now} |"
                     f" {'-' if before is None else before} |")
    lines += ["", "## Definitions", ""]
    lines += [f"- **{k}**: {v}" for k, v in r["definitions"].items()]
    return "\n".join(lines) + "\n"


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def charts(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(title, svg, text alternative) for each chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 10,
                         "svg.fonttype": "none", "axes.spines.top": False,
                         "axes.spines.right": False})
    palette = ["#1d70b8", "#003078", "#4c2c92", "#d53880", "#f47738", "#00703c", "#505a5f"]
    out = []
    stages = list(r["reached"])
    months = list(r["monthly"])
    if months:
        fig, ax = plt.subplots(figsize=(7.5, 3.2))
        bottom = [0] * len(months)
        for i, s in enumerate(stages):
            values = [r["monthly"][m].get(s, 0) for m in months]
            ax.bar(months, values, bottom=bottom, label=s, color=palette[i % len(palette)])
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_ylabel("alerts entering a stage")
        ax.legend(fontsize=8, ncol=3, frameon=False)
        ax.tick_params(axis="x", rotation=45)
        alt = "; ".join(f"{m}: " + ", ".join(f"{s} {r['monthly'][m].get(s, 0)}" for s in stages)
                        for m in months)
        out.append(("Alerts by month and stage", _svg(fig), alt))
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    ax.barh(stages[::-1], [r["reached"][s] for s in stages][::-1], color="#1d70b8")
    ax.set_xlabel("alerts that reached the stage")
    out.append(("The stage funnel", _svg(fig),
                ", ".join(f"{s}: {r['reached'][s]}" for s in stages)))
    if r["themes"]:
        titles = [r["theme_shares"][k]["title"] for k in r["themes"]]
        fig, ax = plt.subplots(figsize=(7.5, 0.4 * len(titles) + 1))
        ax.barh(titles[::-1], list(r["themes"].values())[::-1], color="#4c2c92")
        ax.set_xlabel("alerts raised")
        out.append(("Themes", _svg(fig), ", ".join(
            f"{r['theme_shares'][k]['title']}: {n} ({r['theme_shares'][k]['share_pct']}%)"
            for k, n in r["themes"].items())))
    dist = r["working_days_to_resolution"]["distribution"]
    if any(dist.values()):
        fig, ax = plt.subplots(figsize=(7.5, 2.8))
        ax.bar(list(dist), list(dist.values()), color="#00703c")
        ax.set_xlabel("working days from raising to resolution")
        ax.set_ylabel("alerts")
        out.append(("Time to resolution", _svg(fig),
                    ", ".join(f"{k} working days: {v}" for k, v in dist.items())))
    return out


CSS = """
body{font-family:Arial,Helvetica,sans-serif;color:#0b0c0c;max-width:960px;margin:2em auto;
padding:0 1em;line-height:1.4}
h1{font-size:2em;margin-bottom:.2em}h2{margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:1em 0}
th,td{text-align:left;border-bottom:1px solid #b1b4b6;padding:6px 12px 6px 0;vertical-align:top}
td.n,th.n{text-align:right}
figure{margin:1.5em 0;page-break-inside:avoid}figcaption{font-size:.9em;color:#505a5f}
svg{max-width:100%;height:auto}.lead{font-size:1.2em;color:#505a5f}
@media print{body{margin:0}h2{page-break-after:avoid}}
"""


def to_html(r: dict[str, Any], council: str) -> str:
    e = html.escape
    p = r["previous"]["period"]
    body = [f"<h1>Dispute resolution: {e(r['period']['from'])} to {e(r['period']['to'])}</h1>",
            f"<p class='lead'>{e(council)}. Protocol: {e(r['protocol'])}. Themes:"
            f" {e(r['taxonomy'])}.</p>"]
    main = r.get("main_theme")
    body.append(
        f"<p>{r['raised']} alerts were raised; {r['closed']['resolved']} were resolved and"
        f" {r['closed']['withdrawn']} withdrawn. {r['cafcass']['referred']} referral"
        f"{'s were' if r['cafcass']['referred'] != 1 else ' was'} made to Cafcass, alongside"
        f" the local process. {r['outstanding_at_end']} alerts were outstanding at the end of"
        f" the period, {r['overdue_at_end']} of them overdue. Good practice was"
        f" recorded {r['good_practice']} time{'s' if r['good_practice'] != 1 else ''}."
        + (f" The main theme was {e(r['theme_shares'][main]['title'])}." if main else "")
        + "</p>")
    body.append(f"<table><caption>The figures, with the previous period ({e(p['from'])} to"
                f" {e(p['to'])})</caption><thead><tr><th scope='col'>Figure</th>"
                "<th scope='col' class='n'>This period</th><th scope='col' class='n'>Previous"
                "</th></tr></thead><tbody>")
    for label, now, before in rows(r):
        body.append(f"<tr><td>{e(label)}</td><td class='n'>{e('-' if now is None else str(now))}"
                    f"</td><td class='n'>{e('-' if before is None else str(before))}</td></tr>")
    body.append("</tbody></table>")
    for key, title, column in (("by_team", "By team", "Team"), ("by_iro", "By IRO", "IRO")):
        body.append(f"<h2>{title}</h2><table><thead><tr><th scope='col'>{column}</th>"
                    "<th class='n' scope='col'>Raised</th><th class='n' scope='col'>Resolved"
                    "</th><th class='n' scope='col'>Outstanding at end</th></tr></thead><tbody>")
        for v in r[key]:
            body.append(f"<tr><td>{e(v['name'])}</td><td class='n'>{v['raised']}</td><td class='n'>"
                        f"{v['resolved']}</td><td class='n'>{v['outstanding_at_end']}</td></tr>")
        body.append("</tbody></table>")
    body.append("<h2>Charts</h2>")
    for title, svg, alt in charts(r):
        body.append(f"<figure role='group' aria-label='{e(title)}'><h3>{e(title)}</h3>"
                    f"<div role='img' aria-label='{e(title)}: {e(alt)}'>{svg}</div>"
                    f"<figcaption>{e(title)}: {e(alt)}.</figcaption></figure>")
    body.append("<h2>Definitions</h2><dl>")
    for k, v in r["definitions"].items():
        body.append(f"<dt><strong>{e(k)}</strong></dt><dd>{e(v)}</dd>")
    body.append("</dl>")
    return ("<!DOCTYPE html><html lang='en-GB'><head><meta charset='utf-8'>"
            f"<title>Dispute resolution {e(r['period']['from'])} to {e(r['period']['to'])}"
            f"</title><style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
