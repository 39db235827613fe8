"""The theme classifier trained once per process for each corpus, not once per test.

drp trains its classifier on first use (about a second of scikit-learn) and keeps it in the
folder's ./models; each test has a folder of its own, so each test that raises an alert
trained the same model again. Training is deterministic (a fixed random_state): the same
taxonomy, corpus, own labels and threshold give the same model, so a model trained earlier in
this process is returned instead. drp still calls train, saves and loads its model cache as
before; tests/test_themes.py trains on inputs of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drp.classifier import Example, ThemeClassifier
from drp.themes import Taxonomy

_trained: dict[tuple[Any, ...], ThemeClassifier] = {}
_original: Any = None


def train_once_per_process() -> None:
    """ThemeClassifier.train remembers what it trained in this process, by its inputs."""
    global _original
    if _original is not None:
        return
    _original = ThemeClassifier.__dict__["train"].__func__

    def train(cls: type[ThemeClassifier], taxonomy: Taxonomy, examples: Sequence[Example],
              own: Sequence[Example] = (), *args: Any, **kwargs: Any) -> ThemeClassifier:
        key = (cls, taxonomy.model_dump_json(), tuple(examples), tuple(own), args,
               tuple(sorted(kwargs.items())))
        if key not in _trained:
            _trained[key] = _original(cls, taxonomy, examples, own, *args, **kwargs)
        return _trained[key]

    train.__doc__ = _original.__doc__
    ThemeClassifier.train = classmethod(train)  # type: ignore[method-assign,assignment]
