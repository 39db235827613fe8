"""The service layer: what people and the flows do to alerts, and what people read. The shells
(CLI, web, flows) call only this. Split by kind of work:

- `commands.py`: what people do (raise, respond, escalate, resolve, withdraw, refer, hold,
  resume, extend, reopen, action done, set the theme);
- `system.py`: what the flows do, each re-checking that it is still due (`drp.ladder.due`);
- `queries.py`: what people read (an alert, lists, the inbox, what they may do), each audited;
- `unit.py`: one unit of work (its instant, the actor, loading, the machine, events, e-mail,
  conflicts), which the three build on; `inputs.py`: what people type, cleaned and limited;
- `casework.py`: good practice, moving a misfiled alert, linking related alerts;
- `organisation.py`: cover periods and transfers; `closures.py`: council closure days;
- `steps.py`: the rows this and the timescale run's set-based writer both write.

The rules themselves live elsewhere, each in one place: who may do what in `drp.ladder.access`, when
things fall due in `drp.ladder.due`, what may follow what in `drp.ladder.machine`."""

from __future__ import annotations

from .casework import Casework
from .closures import Closures
from .figures import Figures
from .inputs import ActionIn
from .organisation import Organisation
from .records import Records
from .system import SystemActions

__all__ = ["ActionIn", "AlertService"]


class AlertService(SystemActions, Casework, Organisation, Closures, Records, Figures):
    """Every use case, on one session: commands, system actions and queries. Each call is one
    unit of work in the caller's transaction."""
