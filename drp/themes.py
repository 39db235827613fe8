"""The theme taxonomy (configuration). The classifier arrives with the themes issue."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

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


@lru_cache(maxsize=4)
def load_taxonomy(path: Path) -> Taxonomy:
    return load_yaml(path).validate(Taxonomy)


def categorise_unthemed(session: Any, taxonomy: Taxonomy, now: Any) -> dict[str, Any]:
    """Alerts with no theme yet. The classifier that suggests one arrives with the themes
    issue; until then this reports them, so the flow and its schedule are in place."""
    from sqlmodel import col, select

    from .models import Alert

    ids = [i for i in session.exec(
        select(col(Alert.id)).where(col(Alert.theme).is_(None)).order_by(col(Alert.id)))]
    markdown = (f"# Themes\n\n{len(ids)} alert(s) without a theme: "
                f"{', '.join(map(str, ids)) or 'none'}.\n\nNo classifier is configured yet,"
                " so none were categorised.\n")
    return {"unthemed": ids, "categorised": [], "markdown": markdown}
