"""The council profiles the simulation follows (what each council published in its IRO annual
report, and the shape of the council), the words people write, the year's rhythm, and the
check that the arguments and the protocol in force suit a profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import BadValue
from ...ladder.protocol import Protocol, Stage

# --- the profiles: what each council published, and the shape of the council ----------------

# Cambridgeshire 2020/21 (share of 506 escalations), used for every profile.
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


@dataclass(frozen=True)
class Profile:
    key: str
    council: str
    domain: str
    source: str
    children: int
    iros: int
    iro_managers: int
    social_workers_per_team: int
    services: tuple[ServiceShape, ...]
    raised: int
    formal_reached: tuple[int, ...]  # alerts entering formal stage 1, 2, ... within the year
    published: dict[str, Any]  # the annual report's own figures (formal stages by number)
    needs_formal_stages: int | None = None  # exactly this many formal stages (Manchester: 5)
    formal_open_at_end: int = 0  # formal alerts still open on 31 March ("outstanding")
    withdrawn_share: float = 0.02
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


PROFILES: dict[str, Profile] = {
    "manchester": Profile(
        key="manchester", council="Manchester City Council (simulated)",
        domain="manchester.example",
        source="Manchester IRO annual report 2020/21, section 5.4",
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
        # Stage 1: 625 in the year (52 a month); stage 2: 153; stage 3: 32. Informal
        # discussion comes first ("the importance of resolving practice issues informally");
        # the deputy director (stage 4) and director (stage 5) counts are not published.
        raised=1000, formal_reached=(625, 153, 32, 6, 2),
        published={"reached": {1: 625, 2: 153, 3: 32}, "monthly_stage1": 52},
        needs_formal_stages=5,
    ),
    "peterborough": Profile(
        key="peterborough", council="Peterborough City Council (simulated)",
        domain="peterborough.example",
        source="Peterborough IRO annual report 2019/20, section 13.2",
        # 373 children in care; caseloads within 50-70.
        children=373, iros=6, iro_managers=1, social_workers_per_team=5,
        services=(
            ServiceShape("family-safeguarding", "Family safeguarding", 3),
            ServiceShape("children-in-care", "Children in care", 3, ("permanence_planning",)),
            ServiceShape("leaving-care", "Leaving care", 2, ("leaving_care",)),
        ),
        # 205 case alerts; 12 went to formal DRP, 3 of them to stage 3 (stage 2 is not
        # published: 5 assumed); "three are outstanding".
        raised=205, formal_reached=(12, 5, 3), formal_open_at_end=3,
        published={"raised": 205, "reached": {1: 12, 3: 3}, "formal_open_at_end": 3},
        hold_share=0.01,
    ),
    "cambridgeshire": Profile(
        key="cambridgeshire", council="Cambridgeshire County Council (simulated)",
        domain="cambridgeshire.example",
        source="Cambridgeshire IRO annual report 2020/21, sections 2.4-2.5",
        # 643 children in care; each IRO works with about 60.
        children=643, iros=11, iro_managers=1, social_workers_per_team=5,
        services=(
            ServiceShape("north", "North (Huntingdonshire and Fenland)", 4),
            ServiceShape("south", "South (Cambridge and South Cambridgeshire)", 4),
            ServiceShape("children-in-care", "Children in care", 3, ("permanence_planning",)),
            ServiceShape("disability", "Disabled children's service", 1),
            ServiceShape("leaving-care", "Leaving care", 2, ("leaving_care",)),
        ),
        # 506 escalations; 77% resolved as soon as received by the team managers (the first
        # stage). The formal stages are not published: about a fifth go formal.
        raised=506, formal_reached=(100, 22, 5, 1),
        published={"raised": 506, "resolved_first_stage_pct": 77},
    ),
}

# --- names and words ------------------------------------------------------------------------

FIRST = (
    "Aisha", "Alex", "Amara", "Amir", "Anna", "Ben", "Bilal", "Carys", "Chloe", "Chidi",
    "Claire", "Daniel", "David", "Deborah", "Emma", "Fatima", "Gemma", "Grace", "Hannah",
    "Harpreet", "Helen", "Ian", "Imran", "James", "Jane", "Joanne", "John", "Karen", "Kofi",
    "Laura", "Leah", "Lisa", "Mark", "Martin", "Mary", "Michael", "Mohammed", "Nadia", "Niamh",
    "Nicola", "Olu", "Paul", "Petra", "Priya", "Rachel", "Rhys", "Ruth", "Sam", "Sara",
    "Sarah", "Sean", "Simon", "Sophie", "Stephen", "Tariq", "Tom", "Yasmin", "Zoe",
)
LAST = (
    "Adams", "Ahmed", "Ali", "Bailey", "Baker", "Begum", "Bennett", "Brown", "Campbell",
    "Clarke", "Cooper", "Davies", "Edwards", "Evans", "Green", "Hall", "Harris", "Hughes",
    "Hussain", "Jackson", "James", "Jones", "Khan", "King", "Lee", "Lewis", "Martin",
    "Mensah", "Morgan", "Murphy", "Murray", "Nowak", "Obi", "Okafor", "O'Brien", "Owen",
    "Patel", "Phillips", "Price", "Roberts", "Robinson", "Shah", "Singh", "Smith", "Taylor",
    "Thomas", "Thompson", "Turner", "Walker", "Walsh", "Ward", "White", "Williams", "Wilson",
    "Wood", "Wright", "Young",
)

ALERT_TEXT: dict[str, tuple[tuple[str, ...], str, str]] = {
    # theme: (summaries, impact on the child, outcome wanted)
    "accountability_record_keeping": (
        ("No social work report shared before the child's review",
         "Care plan not updated after the last review",
         "Review recommendations not progressed within their timescales",
         "Child and family assessment out of date",
         "Case records not updated for three months"),
        "The review could not consider an up-to-date picture of the child's needs.",
        "The report or plan completed, shared with the IRO and on the child's file."),
    "permanence_planning": (
        ("Drift in the adoption plan: family finding not started",
         "Special guardianship assessment not started as agreed at review",
         "Long-term fostering match not presented to panel",
         "Plan for return home has no timescales"),
        "Delay in securing a permanent home for the child.",
        "A permanence plan with dates, tracked by the team manager."),
    "leaving_care": (
        ("Pathway plan not started at 16", "No personal adviser allocated at 17",
         "No accommodation plan for when the young person turns 18",
         "Referral to adult services not made"),
        "The young person's preparation for leaving care is at risk.",
        "The pathway plan and personal adviser in place before the next review."),
    "safeguarding": (
        ("Repeated missing episodes without return home interviews",
         "Risk of exploitation not assessed",
         "Strategy meeting not held after an allegation",
         "Safety plan not updated after an incident"),
        "The child may not be safe while the risk is not assessed.",
        "The risk assessed and a safety plan agreed with the network."),
    "holistic_rights_needs": (
        ("Initial health assessment overdue", "No school place for the child",
         "Sibling contact not arranged as agreed", "Advocacy not offered before the review",
         "Life story work not started"),
        "The child's health, education or relationships are not being met.",
        "The need met, with a date, and the child told what will happen."),
    "professional_network": (
        ("IRO not informed of a change of placement",
         "No response to the IRO's requests for an update",
         "Health and education not invited to the review"),
        "Decisions are made without the people who know the child.",
        "The IRO informed and the network involved before decisions are made."),
    "funding": (
        ("Funding for therapy not agreed", "Placement funding decision outstanding",
         "Support package funding not approved"),
        "The child is waiting for support the plan says they need.",
        "A funding decision, recorded and shared with the IRO."),
    "legal_status": (
        ("Section 20 drift: no plan for proceedings",
         "Application to discharge the care order not made",
         "Placement order not revoked although adoption is no longer the plan"),
        "The child's legal status does not match their plan.",
        "Legal planning meeting held and the application made or the plan confirmed."),
}
GENERIC_TEXT = (("Care plan not progressed as agreed at review",),
                "The child's plan is drifting.", "The plan progressed, with dates.")

RESPONSES = (
    "Agreed; the social worker will complete it this week and share it with the IRO.",
    "Discussed with the team manager; allocated and booked in.",
    "Accepted: the plan has been updated and a date set.",
    "The team will address this by the next supervision; the IRO will be updated.",
)
FORMAL_RESPONSES = (
    "Management oversight added: the work is allocated with a completion date.",
    "Accepted; the actions below are agreed with the team and will be tracked.",
    "Reviewed the case with the team manager; a plan with dates is in place.",
)
ESCALATE_NO_RESPONSE = "No response within the stage's timescale"
ESCALATE_REASONS = (
    "The response does not set a date for the work.",
    "The agreed action was not completed; the drift continues.",
    "The response does not address the impact on the child.",
)
OUTCOMES = (
    "Completed and shared with the IRO.",
    "Plan updated; the IRO is satisfied with the response.",
    "Actions agreed and under way; resolved.",
    "The issue has been addressed for the child.",
)
WITHDRAW_REASONS = (
    "The plan changed at the child's review; the alert no longer applies.",
    "Raised on the wrong child's record.",
    "Superseded by a new alert covering the same issue.",
)
REFER_REASON = ("The council's responses do not protect the child's plan; the IRO manager"
                " consulted and independent legal advice taken.")
CAFCASS_NOTES = (  # (the IRO's note, Cafcass's response)
    ("Cafcass's service manager has accepted the referral and will contact the council.",
     "accepted"),
    ("Cafcass has declined: the council's latest plan addresses the concern.", "declined"),
)
HOLD_REASONS = (
    "Awaiting the court hearing listed for the case.",
    "Awaiting the outcome of the placement panel.",
    "Awaiting the strategy meeting's decision.",
)
ACTION_TEXT = (
    "Share the completed report with the IRO",
    "Update the care plan and upload it to the child's file",
    "Confirm the date with the IRO and the child",
)

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
