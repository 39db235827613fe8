"""The cover periods page on GOV.UK patterns (issue 16, point 5): who is away and who covers
for them chosen by name from the people this person may record cover for (the service's
rule, access.may_set_cover), the days in GOV.UK's date inputs, every problem of the form at
once in the error summary with links to the fields, the list by names with dates in words,
and an End button for each running period."""

from __future__ import annotations

import re
from typing import Any

from .conftest import sign_in

USERNAMES = ("iro.ada", "iro.ben", "irom.cat", "sw.dan", "tm.fay", "hos.ivy", "admin.max")
PERIOD = {"person": "iro.ada", "deputy": "irom.cat",
          "starts-day": "1", "starts-month": "3", "starts-year": "2027",
          "ends-day": "5", "ends-month": "3", "ends-year": "2027", "reason": "Annual leave"}


def shown(page: str) -> str:
    """What a reader sees of the page: its text, without tags or attribute values."""
    if "<main" in page:
        page = page[page.index("<main"):page.index("</main>")]
    main = re.sub(r"<(select|script)\b.*?</\1>", " ", page, flags=re.S)  # a select's choices
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def summary(page: str) -> str:
    return page[page.index("govuk-error-summary"):page.index("<h1")]


def options(page: str, select: str) -> list[str]:
    found = re.search(rf'<select[^>]*id="{select}"[^>]*>(.*?)</select>', page, re.S)
    assert found, f"no select {select}"
    return [re.sub(r"\s+", " ", text).strip()
            for text in re.findall(r"<option[^>]*>(.*?)</option>", found.group(1), re.S)]


def post(client: Any, url: str, data: dict[str, str]) -> Any:
    return client.post(url, data={"csrf_token": client.csrf, **data})


def test_people_are_chosen_and_shown_by_name_never_by_username(web: Any) -> None:
    app, _clock, _rt = web
    cat = sign_in(app, "irom.cat")
    page = cat.get("/cover").text
    assert 'type="text" id="person"' not in page and 'type="text" id="deputy"' not in page
    # The IRO manager records cover for the IROs only (access.may_set_cover).
    assert options(page, "person") == ["Choose a person", "Ada Iro", "Ben Iro"]
    assert "Fay Manager" in options(page, "deputy") and "Cat Manager" in options(page, "deputy")
    for part in ("starts-day", "starts-month", "starts-year", "ends-day", "ends-month",
                 "ends-year"):
        assert f'name="{part}"' in page
    r = post(cat, "/cover", PERIOD)
    assert r.status_code == 200 and "govuk-notification-banner--success" in r.text
    assert "The cover period was recorded" in r.text
    text = shown(r.text)
    for username in USERNAMES:
        assert username not in text, username
    row = r.text[r.text.index('id="covers"'):]
    row = shown(row[:row.index("</table>")])
    assert "Ada Iro Cat Manager 1 March 2027 5 March 2027 Annual leave Running Cat Manager" \
        in row, row
    assert 'class="govuk-table drp-table--stack"' in r.text and 'data-label="Covered by"' in r.text
    # Anyone signed in reads the list, by names too; someone who may record cover for
    # nobody is told who does, and gets no form.
    ada = sign_in(app, "iro.ada").get("/cover").text
    assert "Ada Iro" in shown(ada) and "iro.ada" not in shown(ada)
    assert 'action="/cover"' not in ada and "End<span" not in ada
    assert "an IRO manager (for an IRO or IRO manager)" in ada


def test_every_problem_of_the_form_is_listed_at_once_and_linked_to_its_field(web: Any) -> None:
    app, _clock, _rt = web
    admin = sign_in(app, "admin.max")
    r = post(admin, "/cover", {**PERIOD, "deputy": "", "starts-day": "", "starts-month": "",
                               "starts-year": "", "ends-month": ""})
    assert r.status_code == 422, r.text[:2000]
    said = summary(r.text)
    for href, words in (("#deputy", "Select who covers for them"),
                        ("#starts", "Enter the first day"),
                        ("#ends-month", "The last day must include a month")):
        assert f'href="{href}"' in said and words in said, (href, said)
    assert "<title>Error: " in r.text
    assert r.text.count('aria-invalid="true"') >= 4  # the deputy, the first day's three parts
    assert 'value="Annual leave"' in r.text and 'value="iro.ada" selected' in r.text
    assert "No cover periods are recorded." in r.text  # nothing written

    # A last day before the first, and the person covering for themselves: both at once.
    r = post(admin, "/cover", {**PERIOD, "deputy": "iro.ada", "ends-day": "26",
                               "ends-month": "2"})
    assert r.status_code == 422, r.text[:2000]
    said = summary(r.text)
    assert 'href="#deputy"' in said and "Ada Iro cannot cover for themselves" in said
    assert 'href="#ends"' in said and "is before its first day 1 March 2027" in said
    assert "2027-" not in said and "iro.ada" not in shown(r.text)
    assert "No cover periods are recorded." in r.text


def test_a_period_recorded_through_the_form_is_listed_by_names_and_ended_by_its_button(
        web: Any) -> None:
    app, _clock, _rt = web
    fay = sign_in(app, "tm.fay")
    page = fay.get("/cover").text
    assert options(page, "person") == ["Choose a person", "Dan Worker"]  # her team's worker
    r = post(fay, "/cover", {**PERIOD, "person": "sw.dan", "deputy": "tm.fay"})
    assert r.status_code == 200, r.text[:2000]
    text = shown(r.text)
    assert "Dan Worker Fay Manager 1 March 2027 5 March 2027" in text
    end = re.search(r'<form method="post" action="/cover/end".*?</form>', r.text, re.S)
    assert end and "End<span" in end.group() and "the cover for Dan Worker" in end.group()
    key = re.search(r'name="idempotency_key" value="([^"]+)"', end.group())
    assert key
    # Someone who may not record Dan's cover sees no End button.
    assert "End<span" not in sign_in(app, "irom.cat").get("/cover").text
    r = post(fay, "/cover/end", {"person": "sw.dan", "idempotency_key": key.group(1)})
    assert r.status_code == 200 and "The cover was ended" in r.text
    assert "Ended" in shown(r.text) and "End<span" not in r.text
    # Nothing left to end: refused in the summary, linked to the list.
    r = post(fay, "/cover/end", {"person": "sw.dan"})
    assert r.status_code == 422 and 'href="#covers"' in summary(r.text)
    assert "Dan Worker has no cover running or planned to end" in summary(r.text)
    assert "drp cover" not in r.text


def test_someone_not_allowed_to_record_cover_for_a_person_is_refused(web: Any) -> None:
    app, _clock, _rt = web
    fay, ada = sign_in(app, "tm.fay"), sign_in(app, "iro.ada")
    r = post(fay, "/cover", {**PERIOD, "person": "iro.ben", "deputy": "iro.ada"})
    assert r.status_code == 403, r.text[:2000]
    said = summary(r.text)
    assert 'href="#person"' in said and "You may not set cover for Ben Iro" in said
    assert "iro.ben" not in shown(r.text) and "No cover periods are recorded." in r.text
    r = post(ada, "/cover", {**PERIOD, "person": "iro.ben"})
    assert r.status_code == 403 and "You may not set cover for Ben Iro" in summary(r.text)
    # Nor may she end a period someone else recorded.
    assert post(sign_in(app, "irom.cat"), "/cover", PERIOD).status_code == 200
    r = post(ada, "/cover/end", {"person": "iro.ada"})
    assert r.status_code == 403 and 'href="#covers"' in summary(r.text)
    assert "You may not end cover for yourself: only an administrator" in summary(r.text)
    assert "Running" in shown(r.text)
