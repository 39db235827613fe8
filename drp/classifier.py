"""Suggest a theme for an alert's text: offline, fast and explainable.

scikit-learn does the learning (word and character n-gram TF-IDF into a logistic regression);
this module is the glue: what it learns from (the shipped corpus of the taxonomy in force, plus
the themes IROs have confirmed once there are enough of them), a confidence threshold below
which it says it is unsure, and the words that led to each suggestion."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # scikit-learn takes most of a second to import: only when classifying
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

from .errors import ConfigError
from .themes import Taxonomy

MAX_CHARS = 5000          # longer texts are cut (a case alert is a few sentences)
UNSURE_BELOW = 0.40       # below this, the suggestion is marked unsure
OWN_LABELS_NEEDED = 100   # confirmed themes a council needs before they join the corpus
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Example:
    text: str
    theme: str


@dataclass(frozen=True)
class Suggestion:
    theme: str
    confidence: float
    unsure: bool
    because: tuple[str, ...] = ()
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"theme": self.theme, "confidence": round(self.confidence, 3),
                               "unsure": self.unsure, "because": list(self.because)}
        if self.note:
            out["note"] = self.note
        return out


def clean(text: str) -> str:
    return _SPACE.sub(" ", text or "").strip()[:MAX_CHARS]


def load_corpus(path: Path, taxonomy: Taxonomy) -> list[Example]:
    """A JSON-lines file of {"text", "theme"}; every theme must be in the taxonomy."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the theme corpus ({exc.strerror})") from None
    out: list[Example] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            text, theme = clean(str(item["text"])), str(item["theme"])
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{path}, line {n}: expected {{\"text\": ..., \"theme\": ...}}") from None
        if theme not in taxonomy.keys:
            raise ConfigError(f"{path}, line {n}: theme {theme!r} is not in {taxonomy.name}")
        if text:
            out.append(Example(text, theme))
    return out


def _pipeline() -> Pipeline:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                                  strip_accents="unicode", lowercase=True,
                                  token_pattern=r"(?u)\b[\w/]+\b")),  # noqa: S106
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                  min_df=2, strip_accents="unicode", lowercase=True)),
    ])
    # saga is several times faster than lbfgs on these sparse features, with the same answers.
    model = LogisticRegression(C=8.0, max_iter=3000, class_weight="balanced", solver="saga",
                               random_state=7)
    return Pipeline([("features", features), ("model", model)])


@dataclass
class ThemeClassifier:
    taxonomy: Taxonomy
    pipeline: Pipeline
    trained_on: int
    own_labels: int = 0
    threshold: float = UNSURE_BELOW
    _fallback: str = field(default="")
    _words: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def train(cls, taxonomy: Taxonomy, examples: Sequence[Example],
              own: Sequence[Example] = (), threshold: float = UNSURE_BELOW) -> ThemeClassifier:
        """Learn from the corpus, plus the council's own confirmed themes when it has enough."""
        use_own = len(own) >= OWN_LABELS_NEEDED
        data = list(examples) + (list(own) if use_own else [])
        themes = {e.theme for e in data}
        if len(themes) < 2:
            raise ConfigError(f"the theme corpus for {taxonomy.name} needs examples of at"
                              " least two themes")
        pipeline = _pipeline()
        pipeline.fit([e.text for e in data], [e.theme for e in data])
        counts: dict[str, int] = {}
        for e in data:
            counts[e.theme] = counts.get(e.theme, 0) + 1
        return cls(taxonomy=taxonomy, pipeline=pipeline, trained_on=len(data),
                   own_labels=len(own) if use_own else 0, threshold=threshold,
                   _fallback=max(counts, key=lambda k: counts[k]))

    def suggest_many(self, texts: Iterable[str], explain: bool = True) -> list[Suggestion]:
        raw = list(texts)
        cleaned = [clean(t) for t in raw]
        wanted = [i for i, t in enumerate(cleaned) if re.search(r"\w", t)]
        out: list[Suggestion | None] = [None] * len(cleaned)
        if wanted:
            import numpy as np

            probs = self.pipeline.predict_proba([cleaned[i] for i in wanted])
            classes = list(self.pipeline.classes_)
            for row, i in zip(probs, wanted, strict=True):
                best = int(np.argmax(row))
                confidence = float(row[best])
                note = None
                if len(raw[i]) > MAX_CHARS:
                    note = f"only the first {MAX_CHARS} characters were read"
                because = self._because(cleaned[i], classes[best]) if explain else ()
                out[i] = Suggestion(classes[best], confidence, confidence < self.threshold,
                                    because, note)
        return [s if s is not None else Suggestion(
            self._fallback, 0.0, True, (), "no words to go on") for s in out]

    def suggest(self, text: str) -> Suggestion:
        return self.suggest_many([text])[0]

    def _vocabulary(self, words: TfidfVectorizer) -> Any:
        """The word features' names by column (sklearn builds the array anew on each call:
        a few milliseconds an alert page; kept with the model, which never changes)."""
        if self._words is None:
            self._words = words.get_feature_names_out()
        return self._words

    def _because(self, text: str, theme: str, n: int = 5) -> tuple[str, ...]:
        """The words and phrases that pushed most towards the suggested theme."""
        import numpy as np

        features: FeatureUnion = self.pipeline.named_steps["features"]
        words: TfidfVectorizer = dict(features.transformer_list)["words"]
        model: LogisticRegression = self.pipeline.named_steps["model"]
        vector = words.transform([text])
        vocab = self._vocabulary(words)
        k = list(model.classes_).index(theme)
        width = vector.shape[1]
        coef = model.coef_[k][:width]
        scores = vector.multiply(coef).tocsr()
        order = np.argsort(scores.data)[::-1]
        return tuple(str(vocab[scores.indices[j]]) for j in order[:n] if scores.data[j] > 0)


def corpus_path(taxonomy_file: Path, taxonomy: Taxonomy) -> Path:
    """The corpus a taxonomy names (relative to the taxonomy file), or the shipped default."""
    if taxonomy.corpus is None:
        raise ConfigError(f"{taxonomy_file}: the taxonomy names no corpus to learn from;"
                          " add `corpus: FILE.jsonl`")
    path = Path(taxonomy.corpus)
    return path if path.is_absolute() else (taxonomy_file.parent / path).resolve()


def _report(taxonomy: Taxonomy, truth: list[str], predicted: list[str]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = [k for k in taxonomy.keys if k in set(truth) | set(predicted)]
    p, r, f, n = precision_recall_fscore_support(truth, predicted, labels=labels,
                                                 zero_division=0)
    matrix = confusion_matrix(truth, predicted, labels=labels)
    correct = sum(1 for a, b in zip(truth, predicted, strict=True) if a == b)
    return {
        "examples": len(truth),
        "accuracy": round(correct / len(truth), 4) if truth else 0.0,
        "per_theme": {k: {"precision": round(float(p[i]), 3), "recall": round(float(r[i]), 3),
                          "f1": round(float(f[i]), 3), "support": int(n[i])}
                      for i, k in enumerate(labels)},
        "confusion": {"labels": labels, "rows_true_columns_predicted": matrix.tolist()},
    }


def cross_validate(taxonomy: Taxonomy, examples: Sequence[Example], folds: int = 5,
                   seed: int = 7) -> dict[str, Any]:
    """Stratified k-fold cross-validation of the whole pipeline on `examples`."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    texts, truth = [e.text for e in examples], [e.theme for e in examples]
    smallest = min((truth.count(t) for t in set(truth)), default=0)
    if smallest < folds:
        raise ConfigError(f"cross-validation with {folds} folds needs at least {folds}"
                          f" examples of every theme (the smallest has {smallest})")
    predicted = cross_val_predict(
        _pipeline(), texts, truth, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return {"method": f"{folds}-fold stratified cross-validation",
            **_report(taxonomy, truth, [str(x) for x in predicted])}


def held_out(classifier: ThemeClassifier, examples: Sequence[Example]) -> dict[str, Any]:
    """The trained classifier on examples it has not seen."""
    predicted = [s.theme for s in classifier.suggest_many([e.text for e in examples],
                                                          explain=False)]
    return {"method": "held-out file, classifier trained on the corpus",
            **_report(classifier.taxonomy, [e.theme for e in examples], predicted)}


class ModelCache:
    """Trained classifiers kept in ./var/models, so a command does not retrain on every run.
    A model is loaded only if its HMAC (keyed by drp's secret key) matches: pickles from
    anywhere else are never unpickled."""

    def __init__(self, settings: Any) -> None:
        self.folder = Path(str(settings.mail_dir)).parent / "models"
        self.settings = settings

    def _secret(self) -> bytes:
        from .keys import secret_key

        return secret_key(self.settings).encode()

    @staticmethod
    def key(taxonomy: Taxonomy, corpus: Sequence[Example], own: Sequence[Example]) -> str:
        import hashlib

        import sklearn

        h = hashlib.sha256()
        h.update(f"{sklearn.__version__}|{UNSURE_BELOW}|{OWN_LABELS_NEEDED}".encode())
        h.update(taxonomy.model_dump_json().encode())
        for e in (*corpus, *own):
            h.update(f"{e.theme}\t{e.text}\n".encode())
        return h.hexdigest()[:32]

    def load(self, key: str) -> ThemeClassifier | None:
        import hmac
        import pickle

        path = self.folder / f"themes-{key}.pickle"
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        mac, data = blob[:32], blob[32:]
        if not hmac.compare_digest(mac, hmac.digest(self._secret(), data, "sha256")):
            return None
        try:
            model = pickle.loads(data)  # noqa: S301 - authenticated above
        except Exception:
            return None
        return model if isinstance(model, ThemeClassifier) else None

    def save(self, key: str, model: ThemeClassifier) -> None:
        import hmac
        import os
        import pickle

        try:
            from notifications.transports import private_folder

            private_folder(self.folder)  # trained on the council's own confirmed alerts too
            data = pickle.dumps(model)
            tmp = self.folder / f".themes-{key}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(hmac.digest(self._secret(), data, "sha256") + data)
            os.replace(tmp, self.folder / f"themes-{key}.pickle")
        except OSError:
            pass  # a cache that cannot be written only costs a retraining
