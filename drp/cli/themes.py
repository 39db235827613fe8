"""`drp themes`: the theme taxonomy and the classifier."""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .shared import Json, emit, env, out

themes_app = typer.Typer(no_args_is_help=True, help="The theme taxonomy and the classifier.")


@themes_app.command("list")
def themes_list(as_json: Json = False) -> None:
    """The theme keys with their titles (DRP_THEMES)."""
    taxonomy = env().taxonomy
    if as_json:
        emit([{"key": theme.key, "title": theme.title, "description": theme.description}
              for theme in taxonomy.themes])
        return
    table = Table(title=taxonomy.name, title_justify="left")
    for column in ("key", "title", "what belongs"):
        table.add_column(column, overflow="fold")
    for theme in taxonomy.themes:
        table.add_row(theme.key, theme.title, theme.description)
    out.print(table)


@themes_app.command("classify")
def themes_classify(
    as_json: Json = False,
    explain: Annotated[bool, typer.Option("--explain", help="Say which words led to it.")] = False,
) -> None:
    """Read one alert text per line on stdin; print each line's theme key (with --json, one
    JSON object per line: theme, confidence 0-1, unsure, and the words that led to it)."""
    classifier = env().classifier()
    lines = sys.stdin.read().splitlines()
    for start in range(0, len(lines), 2000):
        chunk = lines[start:start + 2000]
        for suggestion in classifier.suggest_many(chunk, explain=as_json or explain):
            if as_json:
                sys.stdout.write(json.dumps(suggestion.as_json()) + "\n")
            elif explain:
                flag = " (unsure)" if suggestion.unsure else ""
                sys.stdout.write(f"{suggestion.theme}\t{suggestion.confidence:.2f}{flag}\t"
                                 f"{', '.join(suggestion.because)}\n")
            else:
                sys.stdout.write(suggestion.theme + "\n")


@themes_app.command("evaluate")
def themes_evaluate(
    file: Annotated[Path | None, typer.Option(
        "--file", help="A JSON-lines file of {text, theme}: cross-validate on it instead.")] = None,
    heldout: Annotated[Path | None, typer.Option(
        "--heldout", help="Train on the corpus, then test on this JSON-lines file.")] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.", min=2, max=20)] = 5,
    as_json: Json = False,
) -> None:
    """Accuracy, per-theme precision and recall, and a confusion matrix."""
    from ..classifier import cross_validate, held_out, load_corpus

    runtime = env()
    if heldout is not None:
        result = held_out(runtime.classifier(), load_corpus(heldout, runtime.taxonomy))
    else:
        examples = load_corpus(file, runtime.taxonomy) if file else runtime.corpus()
        result = cross_validate(runtime.taxonomy, examples, folds)
    if as_json:
        emit(result)
        return
    out.print(f"{result['method']}: {result['examples']} examples, accuracy"
              f" {result['accuracy']:.1%}")
    table = Table(title_justify="left")
    for column in ("theme", "precision", "recall", "f1", "examples"):
        table.add_column(column)
    for key, metrics in result["per_theme"].items():
        table.add_row(key, f"{metrics['precision']:.2f}", f"{metrics['recall']:.2f}",
                      f"{metrics['f1']:.2f}", str(metrics["support"]))
    out.print(table)
    labels = result["confusion"]["labels"]
    matrix = Table(title="Confusion (rows: true theme; columns: suggested)",
                   title_justify="left")
    matrix.add_column("")
    for index in range(len(labels)):
        matrix.add_column(str(index + 1), justify="right")
    for index, row in enumerate(result["confusion"]["rows_true_columns_predicted"]):
        matrix.add_row(f"{index + 1} {labels[index]}", *[str(value) for value in row])
    out.print(matrix)
