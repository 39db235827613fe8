"""The theme taxonomy (configuration). The classifier arrives with the themes issue."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .configfile import load_yaml

ThemeKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class Theme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: ThemeKey
    title: str = Field(min_length=1)
    description: str = ""


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    corpus: str | None = None  # labelled examples to learn from, relative to this file
    themes: tuple[Theme, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Taxonomy:
        keys = [t.key for t in self.themes]
        for key in keys:
            if keys.count(key) > 1:
                raise ValueError(f"theme key {key!r} is used twice")
        return self

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(t.key for t in self.themes)

    def title(self, key: str | None) -> str:
        """A theme's title; a key from an earlier taxonomy is shown as it was stored."""
        for t in self.themes:
            if t.key == key:
                return t.title
        return key or "not set"


@lru_cache(maxsize=4)
def load_taxonomy(path: Path) -> Taxonomy:
    return load_yaml(path).validate(Taxonomy)

