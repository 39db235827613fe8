"""What every form shares (drp/web/forms.py): GOV.UK's date input read from its three fields,
every problem of a form at once, and the service layer's refusals in a page's words."""

from __future__ import annotations

from datetime import date

import pytest

from drp.alerts import inputs
from drp.errors import BadValue, NotFound
from drp.web.forms import (
    DateProblem,
    FormProblems,
    Problems,
    date_input,
    on_the_page,
    refused,
)


def _date(**parts: str) -> dict[str, str]:
    return {f"due-{k}": v for k, v in parts.items()}


def test_a_date_is_read_from_its_day_month_and_year() -> None:
    assert date_input(_date(day="3", month="2", year="2027"), "due", "the due date") == \
        date(2027, 2, 3)
    assert date_input(_date(day="03", month="02", year="2027"), "due", "x") == date(2027, 2, 3)


def test_a_date_left_empty_is_none_unless_required() -> None:
    assert date_input(_date(day="", month="", year=""), "due", "the due date") is None
    with pytest.raises(DateProblem) as refused_:
        date_input({}, "due", "the due date", required=True)
    assert refused_.value.message == "Enter the due date"
    assert refused_.value.field == "due"


@pytest.mark.parametrize(("parts", "message", "field"), [
    ({"day": "3", "month": "", "year": "2027"}, "The due date must include a month", "due-month"),
    ({"day": "", "month": "", "year": "2027"}, "The due date must include a day and month",
     "due"),
    ({"day": "3", "month": "2", "year": ""}, "The due date must include a year", "due-year"),
    ({"day": "31", "month": "2", "year": "2027"}, "The due date must be a real date", "due"),
    ({"day": "3", "month": "13", "year": "2027"}, "The due date must be a real date",
     "due-month"),
    ({"day": "x", "month": "2", "year": "2027"}, "The due date must be a real date", "due"),
    ({"day": "3", "month": "2", "year": "27"},
     "The year of the due date must include 4 numbers", "due-year"),
    ({"day": "3", "month": "2", "year": "2227"}, "The due date must be between 2000 and 2100",
     "due-year"),
])
def test_a_date_typed_wrongly_is_refused_in_govuk_words_at_the_part_to_put_right(
        parts: dict[str, str], message: str, field: str) -> None:
    with pytest.raises(DateProblem) as refused_:
        date_input(_date(**parts), "due", "the due date")
    assert (refused_.value.message, refused_.value.field) == (message, field)


@pytest.mark.parametrize(("day", "month", "marked"), [
    ("31", "2", ("day", "month", "year")), ("29", "2", ("day", "month", "year")),
    ("32", "1", ("day",)), ("3", "13", ("month",))])
def test_a_date_that_is_not_real_marks_the_boxes_at_fault(day: str, month: str,
                                                          marked: tuple[str, ...]) -> None:
    """31 February is the date's mistake as a whole: all three boxes in error (GOV.UK's
    pattern); a day past 31 or a month past 12 is that box's."""
    with pytest.raises(DateProblem) as refused_:
        date_input(_date(day=day, month=month, year="2027"), "due", "the due date")
    assert refused_.value.message == "The due date must be a real date"
    assert refused_.value.parts == marked


def test_a_date_posted_whole_is_read_too() -> None:
    assert date_input({"due": "2027-02-03"}, "due", "the due date") == date(2027, 2, 3)
    with pytest.raises(DateProblem, match="The due date must be a real date"):
        date_input({"due": "tomorrow"}, "due", "the due date")


def test_problems_collects_every_refusal_in_the_forms_order() -> None:
    problems = Problems(who="iro.ada")
    summary = problems.check("summary", lambda: inputs.text(
        "", "the summary", required=True, limit=inputs.SUMMARY_MAX))
    due = problems.check("due", lambda: date_input(_date(day="3", year="2027"), "due",
                                                    "the due date"))
    detail = problems.check("detail", lambda: inputs.text(
        "fine", "the detail", required=False, limit=10))
    assert (summary, due, detail) == (None, None, "fine")
    assert problems.errors == [("summary", "Enter the summary"),
                               ("due-month", "The due date must include a month")]
    with pytest.raises(FormProblems) as raised:
        problems.raise_any()
    shown = refused(raised.value)
    assert shown["errors"] == problems.errors
    assert shown["error_parts"] == {"due": ("month",)}
    Problems().raise_any()  # nothing refused: nothing raised


def test_a_check_lets_other_errors_go_up() -> None:
    def missing() -> None:
        raise NotFound("no such alert")
    with pytest.raises(NotFound):
        Problems().check("x", missing)


@pytest.mark.parametrize(("service", "page"), [
    ("the informal due date '' is not a date; write it as YYYY-MM-DD, e.g. 2026-03-09",
     "The informal due date must be a real date"),
    ("the summary is empty; say it in a few words", "Enter the summary"),
    ("the summary is 501 characters long; the limit is 500",
     "The summary must be 500 characters or fewer"),
    ("the end date is empty; give a date (YYYY-MM-DD)", "Enter the end date"),
    ("a referral to Cafcass needs the legal advice taken: say who gave it (--legal-advice),"
     " after consulting the IRO manager",
     "A referral to Cafcass needs the legal advice taken: say who gave it, after consulting"
     " the IRO manager"),
    ("the informal due date 2026-03-02 is not after today (2026-03-02); give a later date",
     "The informal due date 2 March 2026 is not after today (2 March 2026); give a later date"),
    ("there is no child 'X' that iro.ada can see; check the reference",
     "There is no child 'X' that you can see; check the reference"),
])
def test_a_service_refusal_reads_as_a_page_says_it(service: str, page: str) -> None:
    assert on_the_page(BadValue(service), "iro.ada") == page


def test_a_service_refusal_against_no_field_points_at_the_default() -> None:
    shown = refused(BadValue("the summary is empty; say it in a few words"),
                    (("summary", "summary"),))
    assert shown["errors"] == [("summary", "Enter the summary")]
    assert refused(NotFound("nothing"))["errors"] == [("main-content", "Nothing")]
