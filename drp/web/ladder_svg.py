"""The protocol's ladder drawn for a page: top to bottom, each state by its title, readable
at about 1000 pixels wide. The transitions are the machine diagram's own
(drp.ladder.machine.diagram, written as Graphviz source and read back here), so the page
and `drp protocol diagram` never disagree; only the drawing differs: the moves every stage
shares (resolve, withdraw, reopen) are drawn once, from and to the box holding the stages."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import graphviz

from ..ladder.machine import diagram
from ..ladder.protocol import Protocol

_EDGE = re.compile(r'^\s*"?(?P<src>[\w-]+)"?\s*->\s*"?(?P<dst>[\w-]+)"?\s*'
                   r'\[label=(?:"(?P<quoted>[^"]*)"|(?P<bare>[^\s\]]+))')
ENDS = {"new": "Alert raised", "resolved": "Resolved", "withdrawn": "Withdrawn"}
FONT = "Helvetica"


def edges(protocol: Protocol) -> list[tuple[str, str, str]]:
    """(source, destination, trigger) of every move the machine's diagram draws."""
    with tempfile.TemporaryDirectory() as tmp:
        source = diagram(protocol, Path(tmp) / "ladder.dot").read_text()
    out = []
    for line in source.splitlines():
        found = _EDGE.match(line)
        if found:
            out.append((found["src"], found["dst"], found["quoted"] or found["bare"]))
    return out


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot_source(protocol: Protocol) -> str:
    """The page's drawing as Graphviz source."""
    moves = edges(protocol)
    keys = list(protocol.keys)
    lines = [
        "digraph ladder {",
        f'  graph [rankdir=TB compound=true nodesep=0.5 ranksep=0.45 fontname="{FONT}"'
        ' bgcolor="transparent"]',
        f'  node [shape=box style="rounded,filled" fillcolor="#ffffff" color="#0b0c0c"'
        f' fontname="{FONT}" fontsize=14 margin="0.2,0.08"]',
        f'  edge [color="#505a5f" fontname="{FONT}" fontsize=12 fontcolor="#0b0c0c"]',
        f'  new [label={_q(ENDS["new"])} fillcolor="#1d70b8" fontcolor="#ffffff"'
        ' color="#1d70b8"]',
        "  subgraph cluster_stages {",
        '    label="The stages" labeljust=l style="rounded,dashed" color="#b1b4b6"'
        ' fontsize=13',
    ]
    for stage in protocol.stages:
        days = stage.timescale_working_days
        label = f"{stage.title}\n{stage.responsible.value.replace('_', ' ')}, {days}" \
                f" working day{'s' if days != 1 else ''}"
        lines.append(f"    {stage.key} [label={_q(label)}]")
    lines.append("  }")
    lines.append(f'  resolved [label={_q(ENDS["resolved"])} fillcolor="#cce2d8"'
                 ' color="#005a30"]')
    lines.append(f'  withdrawn [label={_q(ENDS["withdrawn"])} fillcolor="#f3f2f1"]')
    shared = {"resolve": "resolved", "withdraw": "withdrawn"}
    for trigger, dest in shared.items():
        sources = {s for s, d, t in moves if d == dest and t == trigger}
        if sources == set(keys):
            lines.append(f"  {keys[-1]} -> {dest} [ltail=cluster_stages"
                         f' label={_q(trigger + " (any stage)")}]')
        else:
            lines += [f"  {s} -> {dest} [label={_q(trigger)}]" for s in sorted(sources)]
    reopen = {d for s, d, t in moves if s == "resolved" and t == "reopen"}
    if reopen == set(keys):
        lines.append(f"  resolved -> {keys[-1]} [lhead=cluster_stages label=\"reopen\""
                     ' style=dashed constraint=false]')
    else:
        lines += [f'  resolved -> {d} [label="reopen" style=dashed constraint=false]'
                  for d in sorted(reopen)]
    for s, d, t in moves:
        if t in ("resolve", "withdraw", "reopen"):
            continue
        if t in ("bypass", "raise (formal)"):  # the page's key says what dotted lines are
            lines.append(f'  {s} -> {d} [style=dotted color="#b1b4b6" arrowsize=0.6]')
        else:
            lines.append(f"  {s} -> {d} [label={_q(t)} penwidth=1.6 weight=10]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def ladder_svg(protocol: Protocol) -> bytes:
    """The drawing as SVG (Graphviz's dot), its width scaling to the page."""
    svg: bytes = graphviz.Source(dot_source(protocol)).pipe(format="svg")
    # Scale to the page: the viewBox keeps the proportions, the width is the container's.
    return re.sub(rb'<svg width="[\d.]+pt" height="[\d.]+pt"', b'<svg width="100%"', svg,
                  count=1)
