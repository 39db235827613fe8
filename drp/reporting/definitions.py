"""Each figure of the dispute report defined in a sentence a council can quote (docs/reports.md
prints them; a test checks every key is there)."""

DEFINITIONS: dict[str, str] = {
    "raised": "Concerns raised in the period (the date of raising, in local time, falls in"
              " it); good-practice records are counted apart, in good_practice.",
    "reached": "For each stage of the protocol in force, the alerts that entered it in the"
               " period (raising at a stage, escalating or bypassing to it; reopening does"
               " not count), and for cafcass the referrals to Cafcass made in the period.",
    "reached_monthly_average": "reached divided by the number of months in the period.",
    "raised_monthly_average": "Concerns raised in the period divided by the number of months"
                              " in it.",
    "closed": "Alerts whose last outcome in the period was resolved or withdrawn, whenever"
              " they were raised (a referral to Cafcass is not an outcome: the alert stays"
              " open).",
    "resolved_by_stage": "Of the alerts resolved in the period, the stage at which they were"
                         " resolved (likewise withdrawn_by_stage; referred_from_stage: the"
                         " stage each alert was at when referred to Cafcass in the period).",
    "resolved_at_stage_pct": "Of the alerts resolved in the period, the share resolved at"
                             " each stage (stages with none are left out).",
    "resolved_informally_or_first_formal_pct": "Of those resolved, the share resolved at"
                                               " the first stage or the first formal stage.",
    "resolved_within_timescale_pct": "Of those resolved, the share resolved on or before"
                                     " their resolution due date: the formal clock's (the"
                                     " protocol's resolution timescale in working days from"
                                     " the day the alert first entered a formal stage, moved"
                                     " on by holds and agreed extensions), or for an alert"
                                     " resolved informally its informal due date.",
    "resolved_within_stage_timescale_pct": "Of those resolved, the share resolved on or"
                                           " before the due date of the stage at which they"
                                           " were resolved (extensions included).",
    "formal": "entered: alerts that first entered a formal stage in the period (raised at"
              " one, or escalated from informal resolution); resolved, withdrawn and"
              " resolved_within_timescale_pct: of the alerts closed in the period, those"
              " closed at a formal stage, measured against the formal clock;"
              " outstanding_at_end and overdue_at_end: alerts at a formal stage at the end of"
              " the period.",
    "informal": "The same for alerts at the informal stage: raised at it, resolved or"
                " withdrawn at it (within timescale: by the informal due date the IRO set),"
                " and still at it at the end of the period.",
    "working_days_to_resolution": "Median and 90th percentile of the working days from"
                                  " raising to resolution, working days on hold excluded.",
    "working_days_to_resolve": "For the alerts resolved in the period, the median and 90th"
                               " percentile of the working days from raising to resolution"
                               " (holds excluded), overall and by the furthest stage each"
                               " alert reached.",
    "response_times": "For each stage, the responses made in the period to an alert's entry"
                      " into it: the median and 90th percentile of the working days from the"
                      " entry to the first response (holds excluded), and the share made by"
                      " the stage's due date.",
    "automatic_escalations": "Escalations drp made because a stage's response was late.",
    "outstanding_at_end": "Alerts open at the end of the period's last day.",
    "overdue_at_end": "Of those, the ones past a due date at that moment: the stage's"
                      " response due date (when no response had been recorded) or, once the"
                      " formal clock has started, the resolution due date; alerts on hold are"
                      " not overdue.",
    "themes": "Alerts raised in the period by theme, with shares of all raised; the main"
              " theme is the most common one. themes_not_set: those raised with no theme.",
    "team_themes": "Concerns raised in the period by the team the child had when each was"
                   " raised and by theme.",
    "by_team": "For each team (by_service for each service, by_iro for each IRO): concerns"
               " raised, alerts that entered a formal stage, resolved and outstanding at the"
               " end, each under the team and IRO the child had at that event (the raising,"
               " the formal entry, the resolution, the last event before the end), shown"
               " with the team's, service's and person's name today.",
    "by_month": "For each month of the period, the concerns raised, the alerts that first"
                " entered a formal stage, and those resolved and withdrawn.",
    "children": "Distinct children with at least one concern raised in the period.",
    "repeat_children": "Children with more than one concern raised in the period.",
    "holds": "Holds begun in the period, the alerts held, and the working days those holds"
             " lasted (to their end, or to the period's end for one still running then).",
    "actions": "Agreed actions due in the period: how many, how many done on or before their"
               " due date, and the share.",
    "referred_to_director": "Alerts that reached the stage at which the director of"
                            " children's services is responsible, in the period.",
    "referred_to_cafcass": "Referrals to Cafcass made in the period (as cafcass.referred).",
    "cafcass": "referred: referrals to Cafcass made in the period; responses: Cafcass's"
               " responses recorded in the period by response (the last one recorded for"
               " each referral).",
    "good_practice": "Good-practice records made in the period (no figure about concerns"
                     " counts them); good_practice_by_team: the same by the team at the time.",
    "outcomes": "Alerts resolved, withdrawn and reopened in the period, and open at its end.",
    "previous": "The same figures for the period of equal length just before (a period of"
                " whole calendar months is shifted back by that many months).",
    "previous_year": "The same figures for the same dates a year earlier (29 February"
                     " becomes 28 February).",
}
