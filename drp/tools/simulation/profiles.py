"""The council profiles the simulation follows (what each council published in its IRO annual
report, and the shape of the council), the year's rhythm, and the check that the arguments,
the protocol and the taxonomy in force suit a profile."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ...errors import BadValue
from ...ladder.protocol import Protocol, Stage

# --- the profiles: what each council published, and the shape of the council ----------------

# Cambridgeshire 2020/21 (share of 506 escalations), used for every profile without its own.
THEME_SHARES: dict[str, float] = {
    "accountability_record_keeping": 34,
    "permanence_planning": 22,
    "leaving_care": 13,
    "safeguarding": 11,
    "holistic_rights_needs": 10,
    "professional_network": 4,
    "funding": 3,
    "legal_status": 3,
}


@dataclass(frozen=True)
class ServiceShape:
    key: str
    name: str
    teams: int
    themes: tuple[str, ...] = ()  # themes whose alerts mostly concern this service's children


# Portsmouth 2013/14: "Fig. 12. Dispute Resolution Issues" (legal process "<1%": one alert in
# 116 is 0.9%).
PORTSMOUTH_SHARES: dict[str, float] = {
    "statutory_requirements": 16,
    "delay_for_child": 17,
    "assessments_care_plans": 47,
    "iro_not_informed": 3,
    "review_decisions": 4,
    "legal_process": 0.9,
    "preparation_documents": 12,
}


@dataclass(frozen=True)
class Window:
    """Part of the reporting year (`first` month, for `months` months) with its own counts
    entering each formal stage: Manchester publishes July to March like for like."""

    first: int
    months: int
    formal_reached: tuple[int, ...]

    def holds(self, month: int) -> bool:
        """Whether the calendar month falls in the window (the year starts in April)."""
        start = (self.first - 4) % 12
        return start <= (month - 4) % 12 < start + self.months


@dataclass(frozen=True)
class Profile:
    key: str
    council: str
    domain: str
    source: str
    year: int  # the reporting year the seed describes (2020 for 2020/21)
    children: int
    iros: int
    iro_managers: int
    social_workers_per_team: int
    services: tuple[ServiceShape, ...]
    raised: int
    formal_reached: tuple[int, ...]  # alerts entering formal stage 1, 2, ... within the year
    published: dict[str, Any]  # the annual report's own figures (formal stages by number)
    # Parts of the year with counts of their own (they cover the year; formal_reached is
    # then their sum).
    windows: tuple[Window, ...] = ()
    # Of the alerts resolved in the year, the share resolved at the first stage (Cambridgeshire:
    # 77% "resolved as soon as they are received by the relevant social work team managers").
    # When set, the count entering the first formal stage is found to give it, and the later
    # stages keep their proportions to it.
    first_stage_resolved_pct: float | None = None
    needs_formal_stages: int | None = None  # exactly this many formal stages (Manchester: 5)
    # Formal alerts still open on 31 March ("three are outstanding"): exactly this many when
    # set, the others finishing within the year; None leaves it to the timeline.
    formal_open_at_end: int | None = None
    # The themes of the alerts that go formal, where the seed publishes them (Thurrock).
    formal_themes: tuple[tuple[str, int], ...] = ()
    theme_shares: tuple[tuple[str, float], ...] = tuple(THEME_SHARES.items())
    themes_file: str = "themes.yaml"  # the taxonomy the shares are in (config/)
    previous: tuple[tuple[str, Any], ...] = ()  # the year before's figures, where different
    withdrawn_share: float = 0.02
    formal_withdrawn: bool = True  # False: every formal alert closed in the year is resolved
    hold_share: float = 0.015
    auto_share: float = 0.3  # escalations between formal stages made by the timescale run
    # Chance of one referral to Cafcass in the year: IROs' referrals are rare, about 20
    # across England's 153 councils in ten years, so about one council-year in a hundred.
    cafcass_chance: float = 20 / (153 * 10)
    own_informal_due_share: float = 0.2  # alerts whose informal due date the IRO chooses
    acknowledge_share: float = 0.85  # stages acknowledged on the day they reach the manager
    informal_no_response_share: float = 0.3  # of informal escalations: nobody answered
    late_informal_share: float = 0.12  # informal responses after the informal due date
    actions_share: float = 0.5  # formal responses that agree actions with dates

    def earlier(self) -> Profile:
        """The profile for the year before its own: the seed's figures for that year where
        it publishes them, otherwise the same."""
        return replace(self, **dict(self.previous), previous=()) if self.previous else self

    def targets(self) -> tuple[Window, ...]:
        return self.windows or (Window(4, 12, self.formal_reached),)


PROFILES: dict[str, Profile] = {
    "manchester": Profile(
        key="manchester", council="Manchester City Council (simulated)",
        domain="manchester.example",
        source="Manchester IRO annual report 2020/21, section 5.4", year=2020,
        # 1,371 children looked after on 31 March 2021; 21.5 FTE IROs, average caseload 65.
        children=1371, iros=22, iro_managers=2, social_workers_per_team=6,
        services=(
            ServiceShape("north", "North locality", 6),
            ServiceShape("central", "Central locality", 6),
            ServiceShape("south", "South and Wythenshawe locality", 6),
            ServiceShape("permanence", "Permanence and adoption", 5, ("permanence_planning",)),
            ServiceShape("leaving-care", "Leaving care (Through Care)", 5, ("leaving_care",)),
            ServiceShape("disability", "Children with disabilities", 2),
        ),
        # Stage 1: 625 in the year (52 a month), 466 of them July to March; like for like
        # (July to March) 153 at stage 2 and 32 at stage 3. April to June's stages 2 and 3
        # keep July to March's proportions to stage 1. Informal discussion comes first ("the
        # importance of resolving practice issues informally"); the deputy director (stage 4)
        # and director (stage 5) counts and the informal count are not published.
        raised=1000, formal_reached=(625, 205, 43, 6, 2),
        windows=(Window(4, 3, (159, 52, 11, 1, 0)), Window(7, 9, (466, 153, 32, 5, 2))),
        published={"reached": {1: 625}, "monthly_stage1": 52,
                   "july_to_march": {1: 466, 2: 153, 3: 32}},
        needs_formal_stages=5,
        # 2019/20, July to March like for like: 685 at stage 1, 154 at stage 2, 12 at stage 3.
        # Its "43 per month" cannot hold beside 685 in nine months: April to June 2019 runs
        # at 43 a month (129), stages 2 and 3 in July to March's proportions.
        previous=(("raised", 1200), ("formal_reached", (814, 183, 14, 4, 1)),
                  ("windows", (Window(4, 3, (129, 29, 2, 1, 0)),
                               Window(7, 9, (685, 154, 12, 3, 1)))),
                  ("published", {"july_to_march": {1: 685, 2: 154, 3: 12}})),
    ),
    "peterborough": Profile(
        key="peterborough", council="Peterborough City Council (simulated)",
        domain="peterborough.example",
        source="Peterborough IRO annual report 2019/20, section 13.2", year=2019,
        # 373 children in care; caseloads within 50-70.
        children=373, iros=6, iro_managers=1, social_workers_per_team=5,
        services=(
            ServiceShape("family-safeguarding", "Family safeguarding", 3),
            ServiceShape("children-in-care", "Children in care", 3, ("permanence_planning",)),
            ServiceShape("leaving-care", "Leaving care", 2, ("leaving_care",)),
        ),
        # 205 case alerts; 12 went to formal DRP, 3 of them to stage 3 (stage 2 is not
        # published: 5 assumed); "most of which were addressed within timescale and three
        # are outstanding".
        raised=205, formal_reached=(12, 5, 3), formal_open_at_end=3,
        published={"raised": 205, "reached": {1: 12, 3: 3}, "formal_open_at_end": 3},
        hold_share=0.01,
    ),
    "cambridgeshire": Profile(
        key="cambridgeshire", council="Cambridgeshire County Council (simulated)",
        domain="cambridgeshire.example",
        source="Cambridgeshire IRO annual report 2020/21, sections 2.4-2.5", year=2020,
        # 643 children in care; each IRO works with about 60.
        children=643, iros=11, iro_managers=1, social_workers_per_team=5,
        services=(
            ServiceShape("north", "North (Huntingdonshire and Fenland)", 4),
            ServiceShape("south", "South (Cambridge and South Cambridgeshire)", 4),
            ServiceShape("children-in-care", "Children in care", 3, ("permanence_planning",)),
            ServiceShape("disability", "Disabled children's service", 1),
            ServiceShape("leaving-care", "Leaving care", 2, ("leaving_care",)),
        ),
        # 506 escalations; 77% resolved as soon as received by the team managers (the
        # informal stage: the social worker and team manager). The formal stages are not
        # published: the count entering stage 1 is found to give the 77%; later stages in
        # these proportions. "Fewer than over the previous year": 560 assumed for it.
        raised=506, formal_reached=(110, 24, 5, 1), first_stage_resolved_pct=77,
        published={"raised": 506, "resolved_first_stage_pct": 77},
        previous=(("raised", 560),),
    ),
    "portsmouth": Profile(
        key="portsmouth", council="Portsmouth City Council (simulated)",
        domain="portsmouth.example",
        source="Portsmouth IRO annual report 2013/14, 'Dispute resolution and escalation'",
        year=2013,
        # 302 looked-after children on the IROs' caseloads (Fig. 2), 6.5 FTE IROs.
        children=302, iros=6, iro_managers=1, social_workers_per_team=5,
        services=(
            ServiceShape("assessment", "Assessment and intervention", 3),
            ServiceShape("children-in-care", "Looked after children", 3),
            ServiceShape("leaving-care", "Leaving care", 1),
        ),
        # 116 manager alerts, "the majority being resolved at team manager level"; "no cases
        # were formally passed to Head of Service" (stage 2). Formal stage 1 (the team
        # manager, formally) is not published: 10 assumed. Its own seven issues.
        raised=116, formal_reached=(10,),
        published={"raised": 116, "reached": {2: 0}},
        theme_shares=tuple(PORTSMOUTH_SHARES.items()), themes_file="themes.portsmouth.yaml",
    ),
    "thurrock": Profile(
        key="thurrock", council="Thurrock Council (simulated)", domain="thurrock.example",
        source="Thurrock IRO annual report 2020/21, sections 11.1-11.2", year=2020,
        # 291 to 306 children looked after in the year; IROs' caseloads about 60.
        children=300, iros=5, iro_managers=1, social_workers_per_team=5,
        services=(
            ServiceShape("assessment", "Assessment and protection", 2),
            ServiceShape("children-looked-after", "Children looked after", 2,
                         ("permanence_planning",)),
            ServiceShape("leaving-care", "Aftercare", 1, ("leaving_care",)),
        ),
        # "11 completed dispute resolutions": 1 about education, 10 about the care plan not
        # progressed (permanence); "no disputes which had to be referred to the Corporate
        # Director ... or CAFCAS". Most disagreement is resolved informally (not counted:
        # 150 assumed); 2 of the 11 assumed to reach the head of service.
        raised=150, formal_reached=(11, 2), formal_open_at_end=0,
        formal_themes=(("permanence_planning", 10), ("holistic_rights_needs", 1)),
        published={"formal": 11, "reached": {4: 0}, "cafcass": 0},
        cafcass_chance=0.0, formal_withdrawn=False,
    ),
}

# Seasonal variation in raising: fewer in August (summer holidays) and December.
MONTH_WEIGHT = {4: 0.95, 5: 1.0, 6: 1.05, 7: 1.05, 8: 0.8, 9: 1.05, 10: 1.1, 11: 1.1,
                12: 0.8, 1: 1.05, 2: 1.0, 3: 1.05}
WEEKDAY_WEIGHT = (1.0, 1.1, 1.1, 1.05, 0.8)


def checked_profile(key: str, protocol: Protocol, year: int, scale: float) -> Profile:
    """The profile, once the arguments and the protocol in force suit it."""
    if key not in PROFILES:
        raise BadValue(f"there is no profile {key!r}; choose one of {', '.join(PROFILES)}")
    if not 2000 <= year <= 2099:
        raise BadValue(f"--year {year} is not a reporting year; give e.g. 2025 for 2025/26")
    if not 0 < scale <= 10:
        raise BadValue(f"scale {scale} is out of range; give a number above 0, at most 10")
    _check_protocol(PROFILES[key], protocol)
    return PROFILES[key]


def check_taxonomy(profile: Profile, keys: tuple[str, ...] | list[str]) -> dict[str, float]:
    """The theme shares to raise alerts in: the profile's, which the taxonomy in force must
    hold where the profile has a taxonomy of its own (Portsmouth's seven issues); for the
    default shares, those the taxonomy holds (or even shares when it holds none)."""
    shares = dict(profile.theme_shares)
    missing = [k for k in shares if k not in keys]
    if profile.themes_file != "themes.yaml" and missing:
        raise BadValue(
            f"the {profile.key} profile raises alerts in its own themes"
            f" ({', '.join(missing)} ...), which the taxonomy in force does not have: set"
            f" DRP_THEMES=config/{profile.themes_file} and run it again")
    missing_formal = [k for k, _n in profile.formal_themes if k not in keys]
    if missing_formal:
        raise BadValue(f"the {profile.key} profile needs the themes {missing_formal}; use"
                       f" DRP_THEMES=config/{profile.themes_file}")
    known = {k: v for k, v in shares.items() if k in keys}
    return known or dict.fromkeys(keys, 1.0)



def _check_protocol(profile: Profile, protocol: Protocol) -> list[Stage]:
    formal = [s for s in protocol.stages if s.formal]
    if protocol.stages[0].formal:
        raise BadValue(
            f"the simulation raises alerts at informal resolution first, but the protocol in"
            f" force ({protocol.name!r}) starts at a formal stage ({protocol.stages[0].key});"
            " use a protocol with an informal first stage (config/protocol.yaml)")
    if profile.needs_formal_stages is not None and len(formal) != profile.needs_formal_stages:
        raise BadValue(
            f"the {profile.key} profile follows Manchester's six-stage process (five formal"
            f" stages, then Cafcass), but the protocol in force ({protocol.name!r}) has"
            f" {len(formal)} formal stage(s): set DRP_PROTOCOL=config/protocol.manchester.yaml"
            " and run it again")
    needed = max((i + 1 for i, n in enumerate(profile.formal_reached) if n), default=0)
    if len(formal) < needed:
        raise BadValue(
            f"the {profile.key} profile needs {needed} formal stages, but the protocol in force"
            f" ({protocol.name!r}) has {len(formal)}; use config/protocol.yaml")
    return formal
