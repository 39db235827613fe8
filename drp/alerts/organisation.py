"""The organisation's changes as they reach alerts: cover periods (who deputises for whom),
and transfers when a reloaded organisation file moves a child or removes a person."""

from __future__ import annotations

from .unit import UnitOfWork


class Organisation(UnitOfWork):
    pass
