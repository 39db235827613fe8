"""The report's charts, drawn with matplotlib (no display needed): SVG for HTML, PNG for Word.
Each comes with a text alternative that states the same numbers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from .sections import month_name, titles

PALETTE = ["#1d70b8", "#003078", "#4c2c92", "#d53880", "#f47738", "#00703c", "#505a5f"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 10,
                         "svg.fonttype": "none", "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt


def _figures(r: dict[str, Any], keys: list[str]) -> Iterator[tuple[str, str, Any, str]]:
    """(key, title, matplotlib figure, text alternative) for each chart asked for that has
    something to show."""
    plt = _pyplot()
    stage = titles(r)
    if "monthly" in keys and r["by_month"]:
        months = [m["month"] for m in r["by_month"]]
        labels = [f"{month_name(m)[:3]} {m[2:4]}" for m in months]
        fig, ax = plt.subplots(figsize=(7.5, 3.0))
        width = 0.4
        xs = list(range(len(months)))
        ax.bar([x - width / 2 for x in xs], [m["raised"] for m in r["by_month"]], width,
               label="raised", color=PALETTE[0])
        ax.bar([x + width / 2 for x in xs], [m["resolved"] for m in r["by_month"]], width,
               label="resolved", color=PALETTE[5])
        ax.set_xticks(xs, labels, rotation=45)
        ax.set_ylabel("concerns")
        ax.legend(fontsize=8, frameon=False)
        alt = "; ".join(f"{month_name(m['month'])}: {m['raised']} raised, {m['resolved']}"
                        " resolved" for m in r["by_month"])
        yield "monthly", "Concerns raised and resolved by month", fig, alt
    if "funnel" in keys:
        keys_ = [*(s["key"] for s in r["stages"]), "cafcass"]
        names = [stage.get(k, k) for k in keys_]
        fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 1))
        ax.barh(names[::-1], [r["reached"].get(k, 0) for k in keys_][::-1], color=PALETTE[0])
        ax.set_xlabel("alerts that reached the stage")
        yield "funnel", "Alerts that reached each stage", fig, ", ".join(
            f"{n}: {r['reached'].get(k, 0)}" for n, k in zip(names, keys_, strict=True))
    if "themes" in keys and r["themes"]:
        shares = list(r["theme_shares"].values())
        fig, ax = plt.subplots(figsize=(7.5, 0.4 * len(shares) + 1))
        ax.barh([s["title"] for s in shares][::-1], [s["count"] for s in shares][::-1],
                color=PALETTE[2])
        ax.set_xlabel("concerns raised")
        yield "themes", "Concerns raised by theme", fig, ", ".join(
            f"{s['title']}: {s['count']} ({s['share_pct']}%)" for s in shares)
    dist = r["working_days_to_resolution"]["distribution"]
    if "time" in keys and any(dist.values()):
        fig, ax = plt.subplots(figsize=(7.5, 2.8))
        ax.bar(list(dist), list(dist.values()), color=PALETTE[5])
        ax.set_xlabel("working days from raising to resolution")
        ax.set_ylabel("alerts")
        yield "time", "Working days to resolve", fig, ", ".join(
            f"{k} working days: {v}" for k, v in dist.items())


def _saved(fig: Any, fmt: str) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, bbox_inches="tight", dpi=150)
    plt.close(fig)
    return buffer.getvalue()


def svg(r: dict[str, Any], keys: list[str]) -> list[tuple[str, str, str]]:
    """(title, inline SVG, text alternative) for each chart."""
    out = []
    for _, title, fig, alt in _figures(r, keys):
        text = _saved(fig, "svg").decode("utf-8")
        out.append((title, text[text.index("<svg"):], alt))
    return out


def png(r: dict[str, Any], keys: list[str]) -> list[tuple[str, bytes, str]]:
    """(title, PNG bytes, text alternative) for each chart."""
    return [(title, _saved(fig, "png"), alt) for _, title, fig, alt in _figures(r, keys)]
