"""Council closure days and short-notice bank holidays: added by an administrator, counted
as non-working days from then on, and the open due dates they fall within recomputed."""

from __future__ import annotations

from .unit import UnitOfWork


class Closures(UnitOfWork):
    pass
