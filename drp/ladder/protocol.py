"""The dispute ladder as configuration: load and validate protocol.yaml into typed objects."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ..configfile import load_yaml

StageKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]

TERMINAL = ("resolved", "withdrawn")
# A good-practice record's stage: it has no ladder and no clock.
GOOD_PRACTICE = "good_practice"


class Role(StrEnum):
    iro = "iro"
    iro_manager = "iro_manager"
    social_worker = "social_worker"
    team_manager = "team_manager"
    service_manager = "service_manager"
    head_of_service = "head_of_service"
    assistant_director = "assistant_director"
    director = "director"
    admin = "admin"


# Roles that can be responsible at a stage, lowest first: the management line.
LINE_ROLES = (
    Role.social_worker,
    Role.team_manager,
    Role.service_manager,
    Role.head_of_service,
    Role.assistant_director,
    Role.director,
)


class OverduePolicy(StrEnum):
    escalate = "escalate"
    remind_iro = "remind_iro"
    consider_cafcass = "consider_cafcass"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(_Strict):
    key: StageKey
    title: str = Field(min_length=1)
    formal: bool = True
    responsible: Role
    also_notify: tuple[Role, ...] = ()
    also_respond: tuple[Role, ...] = ()
    timescale_working_days: int = Field(ge=1, le=60)
    # The informal stage's due date is the IRO's choice: `timescale_working_days` is the
    # default and this the most they may give (the formal stages' timescales are fixed).
    max_timescale_working_days: int | None = Field(default=None, ge=1, le=60)
    reminder_lead_working_days: int = Field(default=1, ge=0, le=30)
    when_overdue: OverduePolicy

    @model_validator(mode="after")
    def _sane(self) -> Stage:
        if self.responsible not in LINE_ROLES:
            raise ValueError(
                f"responsible must be one of {', '.join(r.value for r in LINE_ROLES)}"
            )
        if self.reminder_lead_working_days >= self.timescale_working_days:
            raise ValueError(
                "reminder_lead_working_days must be less than timescale_working_days"
            )
        if self.max_timescale_working_days is not None:
            if self.formal:
                raise ValueError("max_timescale_working_days is only for the informal stage,"
                                 " whose due date the IRO sets; remove it")
            if self.max_timescale_working_days < self.timescale_working_days:
                raise ValueError("max_timescale_working_days must be at least"
                                 " timescale_working_days (the default)")
        return self

    @property
    def max_working_days(self) -> int:
        """The longest timescale the IRO may give this stage when raising."""
        return self.max_timescale_working_days or self.timescale_working_days


class Cafcass(_Strict):
    key: StageKey = "cafcass"
    title: str = "Referral to Cafcass"


class Protocol(_Strict):
    name: str = Field(min_length=1)
    # The formal clock: from the day an alert first enters a formal stage (IRO Handbook 6.2).
    resolution_working_days: int = Field(default=20, ge=1, le=120)
    max_hold_working_days: int = Field(default=65, ge=1, le=260)
    max_extension_working_days: int = Field(default=10, ge=1, le=60)
    stages: tuple[Stage, ...] = Field(min_length=1)
    cafcass: Cafcass = Cafcass()

    @model_validator(mode="after")
    def _ladder(self) -> Protocol:
        keys = [s.key for s in self.stages]
        for key in {k for k in keys if keys.count(k) > 1}:
            raise ValueError(f"stage key {key!r} is used twice; each stage needs its own key")
        reserved = {"new", "referred", "closed", GOOD_PRACTICE, *TERMINAL, self.cafcass.key}
        for key in keys:
            if key in reserved:
                raise ValueError(f"stage key {key!r} is reserved; choose another")
        for stage in self.stages[:-1]:
            if stage.when_overdue is OverduePolicy.consider_cafcass:
                raise ValueError(
                    f"stage {stage.key}: when_overdue consider_cafcass is only for the last stage"
                )
        if self.stages[-1].when_overdue is OverduePolicy.escalate:
            raise ValueError(
                f"stage {self.stages[-1].key} is the last stage, so when_overdue cannot be"
                " escalate; use consider_cafcass or remind_iro"
            )
        for stage in self.stages[1:]:
            if not stage.formal:
                raise ValueError(f"stage {stage.key}: only the first stage may be informal")
        formal_days = sum(s.timescale_working_days for s in self.stages if s.formal)
        if formal_days > self.resolution_working_days:
            raise ValueError(
                f"the formal stages' timescales add up to {formal_days} working days, more"
                f" than resolution_working_days ({self.resolution_working_days}); the formal"
                " process must fit in it (IRO Handbook: 20 working days)")
        return self

    # -- queries -----------------------------------------------------------------
    @cached_property
    def keys(self) -> tuple[str, ...]:
        """The stages' keys in order: worked out once (the protocol is frozen), as the run asks
        for them thousands of times."""
        return tuple(s.key for s in self.stages)

    @cached_property
    def _by_key(self) -> dict[str, Stage]:
        return {s.key: s for s in self.stages}

    def stage(self, key: str) -> Stage:
        return self._by_key[key]

    def model_copy(self, *, update: Mapping[str, Any] | None = None,
                   deep: bool = False) -> Protocol:
        """A copy (with `update`) that works its keys out again from its own stages."""
        copy = super().model_copy(update=update, deep=deep)
        for name in ("keys", "_by_key"):
            copy.__dict__.pop(name, None)
        return copy

    def index(self, key: str) -> int:
        """Position on the ladder."""
        return self.keys.index(key)

    def next_stage(self, key: str) -> Stage | None:
        i = self.index(key)
        return self.stages[i + 1] if i + 1 < len(self.stages) else None

    def title(self, key: str) -> str:
        """A stage's title; Cafcass's and good practice's for their keys (events of alerts
        referred before drp 0.7 name the Cafcass key as a stage)."""
        if key == self.cafcass.key:
            return self.cafcass.title
        if key == GOOD_PRACTICE:
            return "Good practice"
        if key in self.keys:
            return self.stage(key).title
        return key

    def is_formal(self, key: str) -> bool:
        return key in self.keys and self.stage(key).formal

    @property
    def first_formal(self) -> Stage | None:
        return next((s for s in self.stages if s.formal), None)


def load_protocol(path: Path) -> Protocol:
    return load_yaml(path).validate(Protocol)


@lru_cache(maxsize=8)
def cached_protocol(path: Path, mtime: float) -> Protocol:
    return load_protocol(path)


def protocol_from(path: Path) -> Protocol:
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    return cached_protocol(path, mtime)
