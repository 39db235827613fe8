"""Throughput of the theme classifier on 10,000 alert texts, against the TF-IDF features
alone (the baseline in the same run): texts per second."""

from __future__ import annotations

import random

from common import SMALL, record, timed  # type: ignore[import-not-found]

from drp.classifier import ThemeClassifier, corpus_path, load_corpus
from drp.settings import CONFIG_DIR
from drp.themes import load_taxonomy


def main() -> None:
    path = CONFIG_DIR / "themes.yaml"
    taxonomy = load_taxonomy(path)
    corpus = load_corpus(corpus_path(path, taxonomy), taxonomy)
    train_s, clf = timed(lambda: ThemeClassifier.train(taxonomy, corpus))
    rng = random.Random(7)
    n = 2_000 if SMALL else 10_000
    texts = [rng.choice(corpus).text + " " + rng.choice(corpus).text[:40] for _ in range(n)]
    features = clf.pipeline.named_steps["features"]
    base_s, _ = timed(lambda: features.transform(texts), repeat=3)
    plain_s, _ = timed(lambda: clf.suggest_many(texts, explain=False), repeat=3)
    explained_s, _ = timed(lambda: clf.suggest_many(texts, explain=True))
    print(f"themes: {n} texts, trained on {clf.trained_on} examples in {train_s:.2f} s")
    record({
        "themes_train_s": round(train_s, 3),
        "themes_features_only_texts_per_s": round(n / base_s),
        "themes_classify_texts_per_s": round(n / plain_s),
        "themes_classify_explained_texts_per_s": round(n / explained_s),
        "themes_classify_over_features_only": round(plain_s / base_s, 2),
    })


if __name__ == "__main__":
    main()
