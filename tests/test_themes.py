"""Themes: the taxonomy as configuration, the classifier's accuracy on texts written apart
from its corpus, its explanations and its answers to awkward input, and confirmation."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from drp.classifier import (
    OWN_LABELS_NEEDED,
    Example,
    ThemeClassifier,
    corpus_path,
    cross_validate,
    held_out,
    load_corpus,
)
from drp.errors import BadValue, ConfigError
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy

from .conftest import DATA, Run, backends
from .test_cli import DRP, Cli

DEFAULT = CONFIG_DIR / "themes.yaml"
PORTSMOUTH = CONFIG_DIR / "themes.portsmouth.yaml"


@pytest.fixture(scope="module")
def classifier() -> ThemeClassifier:
    taxonomy = load_taxonomy(DEFAULT)
    return ThemeClassifier.train(taxonomy, load_corpus(corpus_path(DEFAULT, taxonomy), taxonomy))


def test_both_taxonomies_ship_with_a_corpus_of_at_least_40_per_theme() -> None:
    for path in (DEFAULT, PORTSMOUTH):
        taxonomy = load_taxonomy(path)
        corpus = load_corpus(corpus_path(path, taxonomy), taxonomy)
        counts = {k: sum(1 for e in corpus if e.theme == k) for k in taxonomy.keys}
        assert min(counts.values()) >= 40, counts
        assert len({e.text for e in corpus}) == len(corpus)  # no duplicates


def test_at_least_85_percent_on_texts_written_apart_from_the_corpus(
    classifier: ThemeClassifier,
) -> None:
    heldout = load_corpus(DATA / "themes_heldout.jsonl", classifier.taxonomy)
    result = held_out(classifier, heldout)
    assert result["examples"] == 240
    assert result["accuracy"] >= 0.85, result["per_theme"]


def test_cross_validation_reports_precision_recall_and_confusion(
    classifier: ThemeClassifier,
) -> None:
    taxonomy = classifier.taxonomy
    result = cross_validate(taxonomy, load_corpus(corpus_path(DEFAULT, taxonomy), taxonomy), 5)
    assert set(result["per_theme"]) == set(taxonomy.keys)
    assert len(result["confusion"]["rows_true_columns_predicted"]) == len(taxonomy.keys)
    assert result["accuracy"] > 0.8


def test_it_explains_itself_and_says_when_it_is_unsure(classifier: ThemeClassifier) -> None:
    s = classifier.suggest("Pathway plan not completed and no personal adviser allocated at 17;"
                           " no plan for housing at 18")
    assert s.theme == "leaving_care" and not s.unsure and 0 < s.confidence <= 1
    assert any(w in " ".join(s.because) for w in ("pathway", "adviser", "18", "housing"))
    vague = classifier.suggest("please look at this")
    assert vague.unsure and vague.theme in classifier.taxonomy.keys


def test_awkward_lines_get_a_clear_answer(classifier: ThemeClassifier) -> None:
    lines = ["", "   ", "!!!", "x" * 100_000, "<script>alert(1)</script>", "\t\t",
             "Placement breakdown — the child was moved without the IRO being told"]
    for s in classifier.suggest_many(lines):
        assert s.theme in classifier.taxonomy.keys and 0.0 <= s.confidence <= 1.0
    empty = classifier.suggest("")
    assert empty.unsure and empty.confidence == 0.0 and empty.note == "no words to go on"
    assert classifier.suggest("x" * 100_000).note == "only the first 5000 characters were read"


def test_own_confirmed_themes_join_the_corpus_only_when_there_are_enough(
    classifier: ThemeClassifier,
) -> None:
    taxonomy = classifier.taxonomy
    corpus = load_corpus(corpus_path(DEFAULT, taxonomy), taxonomy)
    few = [Example(f"zebra crossing issue {i}", "funding") for i in range(10)]
    assert ThemeClassifier.train(taxonomy, corpus, few).own_labels == 0
    many = [Example(f"zebra crossing issue {i}", "funding") for i in range(OWN_LABELS_NEEDED)]
    trained = ThemeClassifier.train(taxonomy, corpus, many)
    assert trained.own_labels == OWN_LABELS_NEEDED
    assert trained.suggest("zebra crossing").theme == "funding"


def test_a_corpus_with_an_unknown_theme_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"text": "a", "theme": "funding"}\n{"text": "b", "theme": "fundng"}\n')
    with pytest.raises(ConfigError, match="line 2: theme 'fundng' is not in"):
        load_corpus(bad, load_taxonomy(DEFAULT))


@backends
def test_the_suggestion_and_the_confirmation_are_both_recorded(
    run: Run, classifier: ThemeClassifier
) -> None:
    from drp.models import Alert

    def raise_with_suggestions(s):  # type: ignore[no-untyped-def]
        s.suggester = classifier.suggest_many
        return s.raise_alert("iro.ada", "R100", "Missing from placement three times this week;"
                             " no return interviews and concerns about exploitation")

    aid = int(run("2027-03-01T09:00", raise_with_suggestions).id)
    alert = run("2027-03-01T09:01", lambda s: s.s.get(Alert, aid))
    assert (alert.theme, alert.theme_confirmed, alert.theme_suggested) == (
        None, False, "safeguarding")  # suggested, not set: the IRO decides
    run("2027-03-02T09:00", lambda s: s.set_theme(aid, "iro.ada", "holistic_rights_needs"))
    view = run("2027-03-02T09:01", lambda s: s.show(aid, "iro.ada"))
    assert view.theme == "holistic_rights_needs" and view.events[-1].kind == "theme_confirmed"
    with pytest.raises(BadValue, match="no theme 'nonsense'"):
        run("2027-03-02T10:00", lambda s: s.set_theme(aid, "iro.ada", "nonsense"))


def test_themes_classify_json_from_the_command_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    lines = "No pathway plan at 17\n\n" + "y" * 10_000 + "\nSGO assessment drifting\n"
    proc = subprocess.run([DRP, "themes", "classify", "--json"], input=lines, text=True,
                          capture_output=True, env=cli.env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(answers) == 4
    keys = set(load_taxonomy(DEFAULT).keys)
    for a in answers:
        assert a["theme"] in keys and 0.0 <= a["confidence"] <= 1.0
    assert answers[0]["theme"] == "leaving_care"
    assert answers[3]["theme"] == "permanence_planning"
    listed = cli("themes", "list").stdout
    assert "accountability_record_keeping" in listed and "Planning for permanence" in listed
    cli.env["DRP_THEMES"] = str(PORTSMOUTH)
    assert "iro_not_informed" in cli("themes", "list").stdout
