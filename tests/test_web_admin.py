"""Administration in the app (issue 16, point 7): unlock an account or an address (the change
`drp user unlock` makes), a password reset by a one-time link sent by e-mail, who has signed
in lately, and the protocol drawn legibly without server paths. Administrators only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from drp import mail
from drp.models import AccessLog, Person
from notifications.models import OutboxMessage
from notifications.transports import SmtpTransport

from .conftest import TEST_PASSWORD, backends, sign_in

NEW_PASSWORD = "a-brand-new-password-42"


def person_id(rt: Any, username: str) -> int:
    with Session(rt.engine) as s:
        found = s.exec(select(Person.id).where(Person.username == username)).one()
        assert found is not None
        return found


def try_sign_in(app: Any, username: str, password: str) -> Any:
    client = TestClient(app, base_url="https://testserver")
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token.group(1), "next": "/"},
                       follow_redirects=False)


def audit(rt: Any, action: str) -> list[AccessLog]:
    with Session(rt.engine) as s:
        return list(s.exec(select(AccessLog).where(AccessLog.action == action)
                           .order_by(col(AccessLog.id))))


def form_key(page: str, action: str) -> dict[str, str]:
    form = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert form, f"no form posts to {action}"
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form.group(1))
    return {"idempotency_key": key.group(1)} if key else {}


def send_reset(admin: Any, pid: int) -> Any:
    page = admin.get(f"/admin/people/{pid}").text
    return admin.post(f"/admin/people/{pid}/reset", follow_redirects=False, data={
        "csrf_token": admin.csrf, **form_key(page, f"/admin/people/{pid}/reset")})


def reset_mails(rt: Any, username: str) -> list[OutboxMessage]:
    with Session(rt.engine) as s:
        return list(s.exec(select(OutboxMessage).where(
            OutboxMessage.message == "password_reset", OutboxMessage.recipient == username)
            .order_by(col(OutboxMessage.id))))


def link_in(text: str) -> str:
    found = re.findall(r"https://drp\.example(/reset/[A-Za-z0-9_-]+)", text)
    assert found, text
    return str(found[-1])


def use(app: Any, path: str, password: str = NEW_PASSWORD, confirm: str | None = None) -> Any:
    client = TestClient(app, base_url="https://testserver")
    return client.post(path, data={"password": password,
                                   "confirm": password if confirm is None else confirm},
                       follow_redirects=False)


# -- unlock --------------------------------------------------------------------------------
def test_the_people_list_tags_a_locked_account_as_sign_in_finds_it(web: Any) -> None:
    """"Locked" when the next sign-in would be refused (auth's own rule, Auth.locked), not
    merely failed sign-ins that count."""
    app, _clock, rt = web
    admin = sign_in(app, "admin.max")

    def fay_row() -> str:
        page = admin.get("/admin/people").text
        return page.split(">Fay Manager</a>", 1)[1].split("</tr>", 1)[0]

    for _ in range(rt.settings.login_max_failures - 1):
        try_sign_in(app, "tm.fay", "wrong-password-000")
    row = fay_row()
    assert f"{rt.settings.login_max_failures - 1} failed" in row and "Locked" not in row
    try_sign_in(app, "tm.fay", "wrong-password-000")
    assert re.search(r'class="govuk-tag[^"]*">\s*Locked\s*<', fay_row()), fay_row()
    refused = try_sign_in(app, "tm.fay", TEST_PASSWORD)  # as the tag says
    assert refused.status_code == 400 and "too many failed attempts" in refused.text


@backends
def test_unlocking_from_the_page_lets_the_locked_person_sign_in(web_on: Any) -> None:
    app, _clock, rt = web_on
    for _ in range(rt.settings.login_max_failures + 1):
        try_sign_in(app, "tm.fay", "wrong-password-000")
    locked = try_sign_in(app, "tm.fay", TEST_PASSWORD)
    assert locked.status_code == 400 and "too many failed attempts" in locked.text

    admin = sign_in(app, "admin.max")
    pid = person_id(rt, "tm.fay")
    page = admin.get(f"/admin/people/{pid}").text
    assert "Fay Manager" in page and "tm.fay" not in page
    r = admin.post(f"/admin/people/{pid}/unlock", data={"csrf_token": admin.csrf},
                   follow_redirects=False)
    assert r.status_code == 303
    done = admin.get(r.headers["location"]).text
    assert "govuk-notification-banner--success" in done
    assert "Fay Manager can sign in again" in done

    assert try_sign_in(app, "tm.fay", TEST_PASSWORD).status_code == 303
    rows = audit(rt, "unlocked")
    assert [(a.actor, a.channel, a.client) for a in rows] == [
        ("admin.max", "web", "testclient")]
    assert rows[0].detail and "tm.fay" in rows[0].detail


def test_unlocking_an_address_from_the_page(web: Any) -> None:
    app, _clock, rt = web
    limit = rt.settings.login_client_max_failures
    for i in range(limit + 1):
        try_sign_in(app, f"nobody{i}", "wrong-password-000")
    assert "too many failed sign-ins from this address" in try_sign_in(
        app, "sw.dan", TEST_PASSWORD).text
    # The administrator signs in from the same address (a test client has one): clear it
    # first as the command line would, then spray again while they are signed in.
    from drp.web.auth import Auth

    Auth(rt.engine, rt.settings).unlock_client("testclient", _clock.now())
    admin_client = sign_in(app, "admin.max")
    for i in range(limit + 1):
        try_sign_in(app, f"nobody{i}", "wrong-password-000")
    page = admin_client.get("/admin/people").text
    assert "testclient" in page
    r = admin_client.post("/admin/addresses/unlock",
                          data={"csrf_token": admin_client.csrf, "client": "testclient"},
                          follow_redirects=False)
    assert r.status_code == 303
    assert "no longer count" in admin_client.get(r.headers["location"]).text
    assert try_sign_in(app, "sw.dan", TEST_PASSWORD).status_code == 303
    assert audit(rt, "unlocked")[-1].actor == "admin.max"


# -- a password reset by a one-time link --------------------------------------------------
@backends
def test_a_reset_link_works_once_and_ends_the_persons_other_sessions(web_on: Any) -> None:
    app, _clock, rt = web_on
    fay = sign_in(app, "tm.fay")  # a session of hers, elsewhere
    ada = sign_in(app, "iro.ada")
    admin = sign_in(app, "admin.max")
    r = send_reset(admin, person_id(rt, "tm.fay"))
    assert r.status_code == 303
    assert "A link to set a new password is on its way to Fay Manager" in admin.get(
        r.headers["location"]).text
    (row,) = reset_mails(rt, "tm.fay")
    assert row.to_addr == "fay@riverside.example" and row.status == "pending"
    path = link_in(row.text_body)

    form = TestClient(app, base_url="https://testserver").get(path)
    assert form.status_code == 200 and "Fay Manager" in form.text
    # The password rules are drp user password's (keys.hash_password); the link survives.
    short = use(app, path, "too-short")
    assert short.status_code == 422 and "There is a problem" in short.text
    assert "at least 12 characters" in short.text
    mismatch = use(app, path, NEW_PASSWORD, "something-else-entirely")
    assert mismatch.status_code == 422 and "do not match" in mismatch.text

    done = use(app, path)
    assert done.status_code == 303 and done.headers["location"] == "/reset/done"
    assert try_sign_in(app, "tm.fay", NEW_PASSWORD).status_code == 303
    assert try_sign_in(app, "tm.fay", TEST_PASSWORD).status_code == 400
    # Her other session has ended; another person's has not.
    assert fay.get("/inbox", follow_redirects=False).status_code == 303
    assert ada.get("/my-alerts", follow_redirects=False).status_code == 200
    assert try_sign_in(app, "iro.ada", TEST_PASSWORD).status_code == 303

    again = use(app, path, "yet-another-password-1")
    assert again.status_code == 410 and "already been used" in again.text
    assert TestClient(app, base_url="https://testserver").get(path).status_code == 410
    assert try_sign_in(app, "tm.fay", NEW_PASSWORD).status_code == 303

    sent, used = audit(rt, "reset_sent"), audit(rt, "password_reset")
    assert [(a.actor, a.channel) for a in sent] == [("admin.max", "web")]
    assert [(a.actor, a.channel) for a in used] == [("tm.fay", "web")]
    token = path.rsplit("/", 1)[1]
    with Session(rt.engine) as s:
        assert not [a for a in s.exec(select(AccessLog)) if token in (a.detail or "")]
        assert all(token not in (m.text_body + m.html_body)
                   for m in s.exec(select(OutboxMessage)))  # emptied once used


@backends
def test_a_reset_link_expires_is_replaced_by_a_newer_one_and_is_the_persons_alone(
        web_on: Any) -> None:
    app, clock, rt = web_on
    admin = sign_in(app, "admin.max")
    fay, ada = person_id(rt, "tm.fay"), person_id(rt, "iro.ada")
    send_reset(admin, fay)
    first = link_in(reset_mails(rt, "tm.fay")[-1].text_body)
    send_reset(admin, fay)  # a second link: the first stops working
    second = link_in(reset_mails(rt, "tm.fay")[-1].text_body)
    assert first != second
    assert use(app, first).status_code == 410

    # A link sets only its own person's password.
    send_reset(admin, ada)
    adas = link_in(reset_mails(rt, "iro.ada")[-1].text_body)
    assert use(app, adas).status_code == 303
    assert try_sign_in(app, "iro.ada", NEW_PASSWORD).status_code == 303
    assert try_sign_in(app, "tm.fay", TEST_PASSWORD).status_code == 303

    clock.move(hours=24, minutes=1)
    expired = use(app, second)
    assert expired.status_code == 410 and "has expired" in expired.text
    assert try_sign_in(app, "tm.fay", TEST_PASSWORD).status_code == 303
    unknown = TestClient(app, base_url="https://testserver").get("/reset/not-a-real-token")
    assert unknown.status_code == 404 and "not one drp sent" in unknown.text


def test_a_double_clicked_reset_sends_one_link(web: Any) -> None:
    app, _clock, rt = web
    admin = sign_in(app, "admin.max")
    pid = person_id(rt, "tm.fay")
    page = admin.get(f"/admin/people/{pid}").text
    data = {"csrf_token": admin.csrf, **form_key(page, f"/admin/people/{pid}/reset")}
    assert "idempotency_key" in data
    for _ in range(2):
        assert admin.post(f"/admin/people/{pid}/reset", data=data,
                          follow_redirects=False).status_code == 303
    assert len(reset_mails(rt, "tm.fay")) == 1


def test_nobody_without_an_e_mail_address_is_sent_a_link(web: Any) -> None:
    app, _clock, rt = web
    admin = sign_in(app, "admin.max")
    r = send_reset(admin, person_id(rt, "admin.max"))  # Max has no address
    assert r.status_code == 422 and "There is a problem" in r.text
    assert "Max Admin has no e-mail address" in r.text
    assert reset_mails(rt, "admin.max") == []


def test_the_reset_e_mail_carries_the_link_and_nothing_else_to_sign_in_with(
        web: Any, smtp: Any) -> None:
    """Through a real SMTP server: the link to drp's address, the person's name; not their
    username, password or anything of a child's."""
    app, clock, rt = web
    admin = sign_in(app, "admin.max")
    send_reset(admin, person_id(rt, "tm.fay"))
    transport = SmtpTransport("127.0.0.1", smtp.port, "none", None, None,
                              "drp@riverside.example", timeout=5)
    from notifications.outbox import deliver

    report = deliver(rt.engine, transport, clock.now, renderer=mail.renderer(rt.settings))
    assert report.sent == 1, report.errors
    (got,) = smtp.to("fay@riverside.example")
    text, html = got.part("plain"), got.part("html")
    assert got.subject == "[drp] Set a new password for IRO dispute resolution"
    path = link_in(text)
    assert f"https://drp.example{path}" in html
    for body in (text, html):
        assert "Fay Manager" in body
        for secret in ("tm.fay", TEST_PASSWORD, "R100", "child in care", "$argon2"):
            assert secret not in body
    assert use(app, path).status_code == 303


# -- who has signed in, and who may see the administration pages ----------------------------
@backends
def test_the_sign_ins_table_shows_names_newest_first(web_on: Any) -> None:
    app, clock, _rt = web_on
    try_sign_in(app, "tm.fay", TEST_PASSWORD)
    clock.move(minutes=1)
    try_sign_in(app, "iro.ada", "wrong-password-000")
    clock.move(minutes=1)
    try_sign_in(app, "my-secret-password", "x")  # a password typed as the username
    clock.move(minutes=1)
    page = sign_in(app, "admin.max").get("/admin/sign-ins").text
    table = page[page.index("<table"):page.index("</table>")]
    assert "my-secret-password" not in page and "tm.fay" not in page
    order = [table.index(n) for n in ("Max Admin", "Not a person in drp", "Ada Iro",
                                      "Fay Manager")]
    assert order == sorted(order)
    assert table.count("Not signed in") == 2 and table.count(">Signed in<") >= 0
    assert "testclient" in table


ADMIN_GETS = ("/admin", "/admin/protocol.svg", "/admin/closures", "/admin/people",
              "/admin/people/{fay}", "/admin/sign-ins")
ADMIN_POSTS = ("/admin/org", "/admin/closures", "/admin/people/{fay}/unlock",
               "/admin/people/{fay}/reset", "/admin/addresses/unlock")


@backends
def test_only_administrators_reach_the_administration_routes(web_on: Any) -> None:
    app, _clock, rt = web_on
    fay = person_id(rt, "tm.fay")
    nobody = TestClient(app, base_url="https://testserver")
    for who in ("iro.ada", "irom.cat", "tm.fay", "dcs.lou"):
        client = sign_in(app, who)
        for url in ADMIN_GETS:
            r = client.get(url.format(fay=fay), follow_redirects=False)
            assert r.status_code == 403, (who, url)
        for url in ADMIN_POSTS:
            r = client.post(url.format(fay=fay), data={"csrf_token": client.csrf,
                                                       "client": "testclient"},
                            follow_redirects=False)
            assert r.status_code == 403, (who, url)
    for url in ADMIN_GETS:
        r = nobody.get(url.format(fay=fay), follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), url
    assert reset_mails(rt, "tm.fay") == [] and audit(rt, "unlocked") == []


def test_the_administration_page_shows_no_server_path_and_draws_the_ladder_by_title(
        web: Any) -> None:
    app, _clock, rt = web
    admin = sign_in(app, "admin.max")
    page = admin.get("/admin").text
    protocol_file = str(rt.settings.protocol)
    assert rt.protocol.name in page
    for path in (protocol_file, str(rt.settings.protocol.parent), "protocol.yaml",
                 str(rt.settings.mail_dir)):
        assert path not in page, path
    assert not re.search(r"(?<![\w<])/(?:home|tmp|work|etc|usr|var)/", page)
    svg = admin.get("/admin/protocol.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    for stage in rt.protocol.stages:
        assert stage.title in svg.text
    drawn = " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg.text))
    for stage in rt.protocol.stages:
        assert f" {stage.key} " not in f" {drawn} "  # the titles, not the keys
    width = re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+) ([\d.]+)"', svg.text)
    assert width and float(width.group(1)) < float(width.group(2)) * 1.6  # top to bottom
    assert '<svg width="100%"' in svg.text


@pytest.mark.parametrize("path", ["/admin/people", "/admin/sign-ins"])
def test_the_new_pages_are_gov_uk_tables_that_stack_at_375px(web: Any, path: str) -> None:
    app, _clock, _rt = web
    page = sign_in(app, "admin.max").get(path).text
    assert 'class="govuk-table drp-table--stack"' in page and 'data-label="' in page


# -- closure days, on GOV.UK's date input ------------------------------------------------------
@pytest.mark.parametrize(("form", "field", "words"), [
    ({"day-day": "26", "day-month": "2", "day-year": "2027"}, "day", "in the past"),
    ({"day-day": "6", "day-month": "3", "day-year": "2027"}, "day",
     "already not a working day"),
    ({"day-day": "31", "day-month": "2", "day-year": "2027"}, "day",
     "The closure day must be a real date"),
    ({"day-day": "10", "day-month": "", "day-year": "2027"}, "day",
     "The closure day must include a month"),
    ({"reason": ""}, "reason", "Enter the reason for the closure"),
], ids=["past", "saturday", "not-a-date", "no-month", "no-reason"])
def test_a_refused_closure_day_is_listed_in_the_summary_and_beside_its_field(
        web: Any, form: dict[str, str], field: str, words: str) -> None:
    app, _clock, _rt = web
    admin = sign_in(app, "admin.max")
    data = {"csrf_token": admin.csrf, "day-day": "10", "day-month": "3", "day-year": "2027",
            "reason": "Council offices closed", **form}
    r = admin.post("/admin/closures", data=data)
    assert r.status_code == 422, r.text[:2000]
    summary = r.text[r.text.index("govuk-error-summary"):r.text.index("<h1")]
    assert f'href="#{field}' in summary and words in summary  # (#day-month: the part)
    error_id = "day-date-error" if field == "day" else f"{field}-error"
    assert "govuk-form-group--error" in r.text and f'id="{error_id}"' in r.text
    assert "<title>Error: " in r.text
    assert "No closure days are recorded" in r.text
    if field == "reason":
        assert 'value="10"' in r.text  # what was typed stays


def test_both_problems_of_a_closure_form_are_listed_at_once(web: Any) -> None:
    app, _clock, _rt = web
    admin = sign_in(app, "admin.max")
    r = admin.post("/admin/closures", data={"csrf_token": admin.csrf, "day-day": "",
                                            "day-month": "", "day-year": "", "reason": ""})
    assert r.status_code == 422
    summary = r.text[r.text.index("govuk-error-summary"):r.text.index("<h1")]
    assert 'href="#day"' in summary and 'href="#reason"' in summary
    ok = admin.post("/admin/closures", data={"csrf_token": admin.csrf, "day-day": "4",
                                             "day-month": "3", "day-year": "2027",
                                             "reason": "Council offices closed"})
    assert ok.status_code == 200 and "govuk-notification-banner--success" in ok.text
    assert "4 March 2027 is a closure day" in ok.text
    assert "Max Admin" in ok.text and "admin.max" not in ok.text
