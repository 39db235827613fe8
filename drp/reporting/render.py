"""The dispute report in the formats managers use: JSON (stable, documented), and from the same
sections (sections.py) a single self-contained HTML file with SVG charts that prints on A4 and
pastes into Word, Markdown, and CSV of every table. Word is word.py's."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from typing import Any

from . import charts
from .sections import Section, Table, layout, number, span


def to_json(r: dict[str, Any]) -> str:
    return json.dumps(r, indent=2, ensure_ascii=False) + "\n"


def _csv(table: Table, writer: Any) -> None:
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if v is None else v for v in row])


def to_csv(r: dict[str, Any]) -> str:
    """Every table in one file: each starts with a row holding its caption alone, then its
    header row and its rows; a blank row separates tables."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    first = True
    for section in layout(r):
        for table in section.tables:
            if not first:
                writer.writerow([])
            first = False
            writer.writerow([table.caption if table.caption == section.title
                             else f"{section.title}: {table.caption}"])
            _csv(table, writer)
    return buffer.getvalue()


def csv_files(r: dict[str, Any]) -> dict[str, str]:
    """Every table as a CSV file of its own, named NN-<table>.csv in the report's order."""
    out: dict[str, str] = {}
    for section in layout(r):
        for table in section.tables:
            buffer = io.StringIO()
            _csv(table, csv.writer(buffer))
            name = re.sub(r"[^a-z0-9]+", "-", table.key.lower()).strip("-")
            out[f"{len(out) + 1:02d}-{name}.csv"] = buffer.getvalue()
    return out


def _md_cell(value: Any) -> str:
    return number(value).replace("|", "\\|")


def to_md(r: dict[str, Any]) -> str:
    lines = [f"# Dispute resolution, {span(r['period'])}", "",
             f"Protocol: {r['protocol']}. Themes: {r['taxonomy']}.", ""]
    for section in layout(r):
        lines += [f"## {section.title}", ""]
        for paragraph in section.text:
            lines += [paragraph, ""]
        for table in section.tables:
            lines += [f"**{table.caption}**", "",
                      "| " + " | ".join(table.columns) + " |",
                      "|" + "---|" * len(table.columns)]
            lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in table.rows]
            if not table.rows:
                lines.append("| None in the period |" + " |" * (len(table.columns) - 1))
            lines.append("")
    lines += ["## Definitions", ""]
    lines += [f"- **{k}**: {v}" for k, v in r["definitions"].items()]
    return "\n".join(lines) + "\n"


CSS = """
body{font-family:Arial,Helvetica,sans-serif;color:#0b0c0c;max-width:960px;margin:2em auto;
padding:0 1em;line-height:1.4}
h1{font-size:2em;margin-bottom:.2em}h2{margin-top:1.6em;border-top:2px solid #1d70b8;
padding-top:.4em}
table{border-collapse:collapse;width:100%;margin:1em 0}
caption{text-align:left;font-weight:bold;padding-bottom:.3em}
th,td{text-align:left;border-bottom:1px solid #b1b4b6;padding:6px 12px 6px 0;vertical-align:top}
td.n,th.n{text-align:right}
figure{margin:1.5em 0;page-break-inside:avoid}figcaption{font-size:.9em;color:#505a5f}
svg{max-width:100%;height:auto}.lead{font-size:1.2em;color:#505a5f}
@page{size:A4;margin:16mm 14mm}
@media print{body{margin:0;max-width:none;padding:0;font-size:10pt}
h2{page-break-after:avoid;break-after:avoid}thead{display:table-header-group}
tr,figure{page-break-inside:avoid;break-inside:avoid}
table,figure{break-inside:auto}section{break-before:auto}
a{color:inherit;text-decoration:none}}
"""


def _html_table(table: Table) -> str:
    e = html.escape
    numeric = " class='n'"
    head = "".join(f"<th scope='col'{'' if i == 0 else numeric}>{e(c)}</th>"
                   for i, c in enumerate(table.columns))
    body = []
    for row in table.rows:
        cells = [f"<th scope='row'>{e(number(row[0]))}</th>"]
        cells += [f"<td class='n'>{e(number(v))}</td>" for v in row[1:]]
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not table.rows:
        body.append(f"<tr><td colspan='{len(table.columns)}'>None in the period</td></tr>")
    return (f"<table><caption>{e(table.caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _html_section(section: Section, r: dict[str, Any]) -> str:
    e = html.escape
    parts = [f"<section id='{e(section.key)}'><h2>{e(section.title)}</h2>"]
    parts += [f"<p>{e(p)}</p>" for p in section.text]
    parts += [_html_table(t) for t in section.tables]
    for title, svg, alt in charts.svg(r, section.charts):
        parts.append(f"<figure role='group' aria-label='{e(title)}'><h3>{e(title)}</h3>"
                     f"<div role='img' aria-label='{e(title)}: {e(alt)}'>{svg}</div>"
                     f"<figcaption>{e(title)}: {e(alt)}.</figcaption></figure>")
    return "".join(parts) + "</section>"


def to_html(r: dict[str, Any], council: str) -> str:
    e = html.escape
    body = [f"<h1>Dispute resolution: {e(span(r['period']))}</h1>",
            f"<p class='lead'>{e(council)}. Protocol: {e(r['protocol'])}. Themes:"
            f" {e(r['taxonomy'])}.</p>"]
    body += [_html_section(s, r) for s in layout(r)]
    body.append("<section id='definitions'><h2>Definitions</h2><dl>")
    for k, v in r["definitions"].items():
        body.append(f"<dt><strong>{e(k)}</strong></dt><dd>{e(v)}</dd>")
    body.append("</dl></section>")
    return ("<!DOCTYPE html><html lang='en-GB'><head><meta charset='utf-8'>"
            f"<title>Dispute resolution {e(span(r['period']))}"
            f"</title><style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
