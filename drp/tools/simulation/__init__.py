"""`drp simulate`: a council's year of dispute resolution (1 April to 31 March, the councils'
reporting year), written through the service layer exactly as people and the scheduled flows
would have made it, to match the volumes and the stage funnel the council published in its IRO
annual report (Manchester 2020/21, Peterborough 2019/20, Cambridgeshire 2020/21).

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

- `profiles.py`: the council profiles, the words people write, the year's rhythm, and the
  check that the arguments and the protocol in force suit a profile;
- `organisation.py`: the council-sized organisation (`build_org`);
- `planner.py`: the year's plan (`plan_year`), every alert's dated steps;
- `runner.py`: playing the plan day by day (`simulate`), the tally and the summary."""

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
