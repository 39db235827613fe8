"""`drp simulate`: a council's year of dispute resolution (1 April to 31 March, the councils'
reporting year), written through the service layer exactly as people and the scheduled flows
would have made it, to match the volumes and the stage funnel the council published in its IRO
annual report (Manchester 2020/21, Peterborough 2019/20, Cambridgeshire 2020/21, Portsmouth
2013/14, Thurrock 2020/21). `years` > 1 writes the years before it first; `add` writes on top of
a database with data.

The year is planned first: a council-sized organisation, then who raises which alert about
which child and when, and for each stage when it is answered, escalated (by the IRO, or by the
timescale run when a formal stage's response is late), put on hold, resolved or withdrawn;
rarely (about one council-year in a hundred) an alert is also referred to Cafcass, alongside
the local process. Which alerts climb how far is chosen so that the alerts entering each stage
within the year are the published counts. Then the year is played day by day: each working day's
timescale run at 07:00 (as the scheduled flow does: it resumes holds that have ended and
escalates overdue formal stages), then that day's commands, one transaction each, each as of
its own instant. The summary counts what was actually written, so `drp report disputes` over
the year agrees with it.

Split by what the code does, each module importing only those above it:

- `profiles.py`: the council profiles, the year's rhythm, and the check that the arguments,
  the protocol and the taxonomy in force suit a profile;
- `words.py`: the words people write;
- `organisation.py`: the council-sized organisation (`build_org`), or the one in the
  database (`from_database`, for `--add`);
- `planner.py`: each alert's dated steps;
- `year.py`: the year's plan (`plan_year`): who raises what when, and how far each climbs;
- `summary.py`: the tally of what was written and the summary;
- `runner.py`: playing the plan day by day (`simulate`), year after year."""

from __future__ import annotations

from .organisation import ChildLine, Organisation, build_org
from .planner import AlertPlan, Plan, Step
from .profiles import PROFILES, Profile, ServiceShape
from .runner import simulate
from .year import plan_year

__all__ = [
    "PROFILES",
    "AlertPlan",
    "ChildLine",
    "Organisation",
    "Plan",
    "Profile",
    "ServiceShape",
    "Step",
    "build_org",
    "plan_year",
    "simulate",
]
