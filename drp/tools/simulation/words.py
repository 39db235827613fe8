"""The words the simulation's people write: names, alert summaries with the impact on the
child and the outcome wanted (for each theme of the shipped taxonomies), responses, reasons
and outcomes."""

from __future__ import annotations

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
# Portsmouth's seven issues (config/themes.portsmouth.yaml).
ALERT_TEXT.update({
    "statutory_requirements": (
        ("Statutory visit to the child overdue", "Review not held within timescale",
         "Health assessment not done within the statutory timescale"),
        "The council's duties to the child are not being met on time.",
        "The visit, review or assessment done, with the date recorded."),
    "delay_for_child": (
        ("Decision on the child's plan postponed again", "Agreed move home has not happened",
         "The child is still waiting for the therapy agreed at review"),
        "The child is waiting for what was agreed.",
        "A date for the decision, kept, and the child told."),
    "assessments_care_plans": (
        ("Care plan out of date", "Pathway plan missing", "Assessment not completed",
         "Care plan not updated after the change of placement"),
        "Plans for the child are not current, so nobody can follow them.",
        "A current care plan or assessment on the child's file."),
    "iro_not_informed": (
        ("IRO not told of a placement move", "IRO not informed of a serious incident"),
        "The IRO could not oversee the child's plan at a significant change.",
        "The IRO informed of significant changes within a working day."),
    "review_decisions": (
        ("Review decisions not carried out", "Recommendation from the last review not actioned"),
        "Decisions made for the child at review are not happening.",
        "The review's decisions carried out, with dates."),
    "legal_process": (
        ("Legal planning meeting not held as agreed", "Application to court not progressed"),
        "The child's legal status does not match their plan.",
        "The legal step taken or the plan confirmed."),
    "preparation_documents": (
        ("Social work report not shared before the review",
         "Consultation documents not sent before the meeting"),
        "The review could not go ahead with the information it needed.",
        "Reports shared three working days before each review."),
})
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
