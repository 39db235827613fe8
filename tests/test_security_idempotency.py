"""Double submission (issue 15): every form that changes data carries a one-time key made when
the page was rendered, and a JSON API write may send an Idempotency-Key header; the key is
claimed in the change's own transaction (drp.idempotency), so the same submission sent again
(a double click, a resubmitted page, a client's retry, two requests racing) gets the first
result and changes nothing: no second alert, response or e-mail. Another person's key, or the
key sent with other content, is refused; keys are forgotten after a day."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import select

from drp import db, idempotency
from drp.models import AccessLog, Alert, Event
from drp.web.auth import Auth
from notifications.models import OutboxMessage
from tests.conftest import (
    DATA,
    backends,
    sign_in,
)
from tests.support.govuk import banner

BASE = "https://testserver"
# A second concern for R100, confirmed as a separate matter (the child has one open already):
# nothing but the key stops it being recorded twice.
RAISE = {"child": "R100", "summary": "The care plan has not been updated",
         "detail": "Agreed at the review in January.", "impact": "Drift for the child.",
         "outcome_wanted": "An updated plan.", "theme": "permanence_planning",
         "stage": "informal", "separate": "yes", "do": "raise"}


def form_key(page: str, action: str) -> str:
    """The one-time key of the page's form that posts to `action`."""
    form = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert form, f"no form posts to {action}"
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form.group(1))
    assert key, f"the form posting to {action} carries no one-time key"
    return key.group(1)


def counts(rt: Any) -> dict[str, int]:
    """What a submission writes: alerts, events by kind, e-mails queued."""
    with db.transaction(rt.engine) as s:
        out = {"alerts": s.exec(select(func.count()).select_from(Alert)).one(),
               "mail": s.exec(select(func.count()).select_from(OutboxMessage)).one()}
        for kind, n in s.exec(select(Event.kind, func.count()).group_by(Event.kind)):
            out[kind] = n
        return out


def raised(rt: Any, clock: Any) -> int:
    with db.transaction(rt.engine) as s:
        return int(rt.service(s, clock).raise_alert("iro.ada", "R100", "Drift").id)


def test_a_double_clicked_raise_makes_one_alert_and_one_set_of_emails(web: Any) -> None:
    app, clock, rt = web
    raised(rt, clock)
    ada = sign_in(app, "iro.ada")
    key = form_key(ada.get("/alerts/new").text, "/alerts/new")
    form = {"csrf_token": ada.csrf, "idempotency_key": key, **RAISE}
    before = counts(rt)
    first = ada.post("/alerts/new", data=form, follow_redirects=False)
    assert first.status_code == 303, first.text
    after_first = counts(rt)
    assert after_first["alerts"] == 2 and after_first["mail"] > before["mail"]
    again = ada.post("/alerts/new", data=form, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == first.headers["location"]
    assert counts(rt) == after_first  # no second alert, event or e-mail
    # The page it leads to offers fresh keys: a new alert is a new submission.
    fresh = form_key(ada.get("/alerts/new").text, "/alerts/new")
    assert fresh != key
    r = ada.post("/alerts/new", data={**form, "idempotency_key": fresh},
                 follow_redirects=False)
    assert r.status_code == 303 and counts(rt)["alerts"] == 3


def test_a_double_clicked_response_is_recorded_once_and_the_key_is_for_that_form(
        web: Any) -> None:
    app, clock, rt = web
    aid = raised(rt, clock)
    fay = sign_in(app, "tm.fay")
    page = fay.get(f"/alerts/{aid}?act=respond").text  # the page with its form open
    key = form_key(page, f"/alerts/{aid}/respond")
    # Every form has a key of its own (each opened by its button, one at a time).
    keys = [*re.findall(r'name="idempotency_key" value="([^"]+)"', page),
            *re.findall(r'name="idempotency_key" value="([^"]+)"',
                        fay.get(f"/alerts/{aid}?act=acknowledge").text)]
    assert len(keys) == 2 and len(set(keys)) == len(keys)
    form = {"csrf_token": fay.csrf, "idempotency_key": key, "message": "We will visit",
            "action1": "Visit the child", "action1_due-day": "10", "action1_due-month": "3",
            "action1_due-year": "2027"}
    before = counts(rt)
    first = fay.post(f"/alerts/{aid}/respond", data=form, follow_redirects=False)
    assert first.status_code == 303, first.text
    after_first = counts(rt)
    assert after_first["responded"] == 1 and after_first["mail"] > before["mail"]
    again = fay.post(f"/alerts/{aid}/respond", data=form, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == first.headers["location"]
    assert counts(rt) == after_first
    # Back, edit, resubmit with the old key: refused, saying so, nothing done.
    # (a refused form goes back to its page, Post/Redirect/Get: the refusal is read there)
    edited = fay.post(f"/alerts/{aid}/respond", data={**form, "message": "Changed"})
    assert edited.status_code == 422 and "used for a different request" in edited.text
    # The key of one form sent with another: refused too.
    other = fay.post(f"/alerts/{aid}/acknowledge",
                     data={"csrf_token": fay.csrf, "idempotency_key": key})
    assert other.status_code == 422 and "used for a different request" in other.text
    assert counts(rt) == after_first


def test_every_form_that_changes_data_carries_a_key_of_its_own(web: Any) -> None:
    """The raise page, an alert's page for its IRO (hold, extend, withdraw, refer...) and for
    its team manager (acknowledge, respond), the referral page and the administration pages
    (the organisation upload, cover periods, closure days): every POST form but signing out
    carries a one-time key, each form its own."""
    app, clock, rt = web
    aid = raised(rt, clock)
    ada, fay, max_ = sign_in(app, "iro.ada"), sign_in(app, "tm.fay"), sign_in(app, "admin.max")
    # A cover period recorded, so that the cover page offers ending it (a form per period).
    r = max_.post("/cover", data={"csrf_token": max_.csrf, "person": "iro.ben",
                                  "deputy": "irom.cat", "starts": "2027-03-01",
                                  "ends": "2027-03-05", "reason": "Annual leave"},
                  follow_redirects=False)
    assert r.status_code == 303, r.text
    # An alert's page opens one form at a time (?act=): each form its person's buttons offer.
    alert_pages = [who.get(f"/alerts/{aid}?act={act}").text for who in (ada, fay)
                   for act in re.findall(r'href="\?act=([\w-]+)#act"',
                                         who.get(f"/alerts/{aid}").text)]
    pages = [ada.get("/alerts/new").text, *alert_pages, ada.get(f"/alerts/{aid}/refer").text,
             max_.get("/admin").text, max_.get("/cover").text,
             max_.get("/admin/closures").text]
    seen: set[str] = set()
    for page in pages:
        for action, body in re.findall(
                r'<form[^>]*method="post"[^>]*action="([^"]+)"[^>]*>(.*?)</form>', page, re.S):
            if action == "/logout":
                continue
            keys = re.findall(r'name="idempotency_key" value="([^"]+)"', body)
            assert len(keys) == 1, f"the form posting to {action} carries {len(keys)} keys"
            assert keys[0] not in seen
            seen.add(keys[0])
    assert {"/alerts/new", f"/alerts/{aid}/respond", f"/alerts/{aid}/acknowledge",
            f"/alerts/{aid}/hold", f"/alerts/{aid}/refer", "/admin/org", "/cover",
            "/cover/end", "/admin/closures"} <= {
        a for page in pages for a in re.findall(r'action="([^"]+)"', page)}
    assert len(seen) >= 14


def test_another_persons_key_is_theirs_apart(web: Any) -> None:
    """A key is each person's own: the same key posted by another person is their request,
    done as theirs (the social worker may respond at the informal stage too), never given the
    first person's answer."""
    app, clock, rt = web
    aid = raised(rt, clock)
    fay, dan = sign_in(app, "tm.fay"), sign_in(app, "sw.dan")
    key = form_key(fay.get(f"/alerts/{aid}?act=respond").text, f"/alerts/{aid}/respond")
    form = {"idempotency_key": key, "message": "We will visit"}
    r = fay.post(f"/alerts/{aid}/respond", data={"csrf_token": fay.csrf, **form},
                 follow_redirects=False)
    assert r.status_code == 303
    after = counts(rt)
    r = dan.post(f"/alerts/{aid}/respond", data={"csrf_token": dan.csrf, **form})
    assert r.status_code == 200 and "used by someone else" not in r.text
    assert counts(rt)["responded"] == after["responded"] + 1


def test_keys_are_forgotten_after_a_day_and_pruned_by_the_next_claim(web: Any) -> None:
    app, clock, rt = web
    aid = raised(rt, clock)
    fay = sign_in(app, "tm.fay")
    for _ in range(2):
        key = form_key(fay.get(f"/alerts/{aid}?act=respond").text, f"/alerts/{aid}/respond")
        r = fay.post(f"/alerts/{aid}/respond", data={
            "csrf_token": fay.csrf, "idempotency_key": key, "message": "Seen"},
            follow_redirects=False)
        assert r.status_code == 303

    def kept() -> int:
        with db.transaction(rt.engine) as s:
            return int(s.exec(select(func.count()).select_from(
                idempotency.IdempotencyKey)).one())

    assert kept() == 2
    clock.move(hours=idempotency.KEEP.total_seconds() / 3600 + 1)
    fay = sign_in(app, "tm.fay")  # the session has expired meanwhile
    key = form_key(fay.get(f"/alerts/{aid}?act=respond").text, f"/alerts/{aid}/respond")
    r = fay.post(f"/alerts/{aid}/respond", data={
        "csrf_token": fay.csrf, "idempotency_key": key, "message": "Seen again"},
        follow_redirects=False)
    assert r.status_code == 303
    assert kept() == 1  # the two expired keys went with this claim


# -- the JSON API ---------------------------------------------------------------------------
def api_client(app: Any, rt: Any, clock: Any, *people: str) -> Any:
    tokens = {who: Auth(rt.engine, rt.settings).new_api_token(who, "test", clock.now())
              for who in people}

    def api(who: str, url: str, body: Any = None, key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        if key is not None:
            headers[idempotency.HEADER] = key
        return TestClient(app, base_url=BASE).post(url, json=body, headers=headers)

    return api


API_RAISE = {"child": "R100", "summary": "The care plan has not been updated",
             "separate": True}


def test_the_api_replays_a_repeated_request_and_keys_are_each_persons_own(
        web: Any) -> None:
    app, clock, rt = web
    raised(rt, clock)
    api = api_client(app, rt, clock, "iro.ada", "tm.fay", "sw.dan")
    first = api("iro.ada", "/api/alerts", API_RAISE, key='"8e03978e-40d5-43e8"')
    assert first.status_code == 201, first.text
    after = counts(rt)
    assert after["alerts"] == 2 and after["mail"] > 0
    # A client's retry: the same key (quoted or not, as the draft's sf-string allows), the
    # same body in another spelling; the first answer, nothing done.
    again = api("iro.ada", "/api/alerts", dict(reversed(API_RAISE.items())),
                key="8e03978e-40d5-43e8")
    assert (again.status_code, again.content) == (201, first.content)
    assert again.headers["Idempotency-Replayed"] == "true"
    assert counts(rt) == after
    # The same key with another body, or to another operation: 422, saying so, nothing done.
    r = api("iro.ada", "/api/alerts", {**API_RAISE, "summary": "Another"},
            key="8e03978e-40d5-43e8")
    assert r.status_code == 422 and "different request" in r.json()["detail"]
    aid = first.json()["id"]
    r = api("iro.ada", f"/api/alerts/{aid}/escalate", {"reason": "x"},
            key="8e03978e-40d5-43e8")
    assert r.status_code == 422 and "different request" in r.json()["detail"]
    assert counts(rt) == after
    # A response sent twice: recorded once.
    body = {"message": "We will visit", "actions": [{"text": "Visit", "due": "2027-03-10"}]}
    first = api("tm.fay", f"/api/alerts/{aid}/respond", body, key="respond-1")
    again = api("tm.fay", f"/api/alerts/{aid}/respond", body, key="respond-1")
    assert first.status_code == 200 and (again.status_code, again.content) == (
        200, first.content)
    after = counts(rt)
    assert after["responded"] == 1
    # Another person's key of the same spelling is theirs, apart: neither the first answer
    # replayed to them nor a refusal for them (a script's "respond-1" is not another's to
    # take away: keys were council-wide, the review found).
    r = api("sw.dan", f"/api/alerts/{aid}/respond", body, key="respond-1")
    assert r.status_code == 200 and "Idempotency-Replayed" not in r.headers, r.text
    assert r.json()["events"][-2]["actor"] == "sw.dan"  # his response, done as his
    assert counts(rt)["responded"] == 2
    ben = api_client(app, rt, clock, "iro.ben")
    theirs = ben("iro.ben", "/api/alerts", {**API_RAISE, "child": "R101"},
                 key="8e03978e-40d5-43e8")
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    after = counts(rt)
    # A key that is not one: refused, naming the header.
    r = api("tm.fay", f"/api/alerts/{aid}/respond", body, key="x" * 129)
    assert r.status_code == 422 and idempotency.HEADER in r.json()["detail"]
    assert counts(rt) == after
    # Without the header a request is done each time, as before.
    for _ in range(2):
        assert api("iro.ada", "/api/alerts", API_RAISE).status_code == 201
    assert api("tm.fay", f"/api/alerts/{aid}/respond", body).status_code == 200
    assert (counts(rt)["responded"], counts(rt)["alerts"]) == (
        after["responded"] + 1, after["alerts"] + 2)


def test_the_header_is_described_in_the_openapi_document(web: Any) -> None:
    app, _clock, _rt = web
    schema = TestClient(app, base_url=BASE).get("/openapi.json").json()
    operation = schema["paths"]["/api/alerts/{alert_id}/respond"]["post"]
    header = next(p for p in operation["parameters"] if p["name"] == idempotency.HEADER)
    assert header["in"] == "header" and not header.get("required")
    assert "24 hours" in header["description"]


# -- racing duplicates ----------------------------------------------------------------------
@backends
def test_two_identical_submissions_racing_do_the_change_once(
        web_on: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads post the same form (and then the same API request) at once against the
    real app: both have passed sign-in and CSRF and opened their unit of work, and claim the
    key together (a barrier); one alert, one response, one set of e-mails, both answered
    alike. The second claim waits for the first transaction (PostgreSQL: its uncommitted row;
    SQLite: its write lock) and finds its result."""
    app, clock, rt = web_on
    together, counting = threading.Barrier(2), threading.Lock()
    entered = [0]
    original_claim = idempotency.Once.claim

    def claim_together(self: idempotency.Once, *args: Any) -> Any:
        together.wait(timeout=30)  # nothing written yet by either: no lock is held here
        with counting:
            entered[0] += 1
        return original_claim(self, *args)

    monkeypatch.setattr(idempotency.Once, "claim", claim_together)
    raised(rt, clock)
    ada = sign_in(app, "iro.ada")
    form = {"csrf_token": ada.csrf, **RAISE,
            "idempotency_key": form_key(ada.get("/alerts/new").text, "/alerts/new")}
    twin = TestClient(app, base_url=BASE, cookies=dict(ada.cookies))

    def post(client: Any) -> tuple[int, str]:
        r = client.post("/alerts/new", data=form, follow_redirects=False)
        return r.status_code, r.headers.get("location", r.text[-2000:])

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(post, (ada, twin)))
    assert answers[0] == answers[1] and answers[0][0] == 303, answers
    after = counts(rt)
    assert after["alerts"] == 2 and after["raised"] == 2 and after["mail"] > 0
    assert entered[0] == 2

    api = api_client(app, rt, clock, "tm.fay")
    aid = int(answers[0][1].split("/")[2].split("?")[0])

    def respond(_i: int) -> tuple[int, bytes]:
        r = api("tm.fay", f"/api/alerts/{aid}/respond", {"message": "Seen"}, key="race-1")
        return r.status_code, r.content

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(respond, range(2)))
    assert replies[0] == replies[1] and replies[0][0] == 200, replies
    final = counts(rt)
    assert final["responded"] == 1 and entered[0] == 4
    assert final["mail"] > after["mail"]


# -- the administration forms ---------------------------------------------------------------
def audit_rows(rt: Any, action: str) -> int:
    with db.transaction(rt.engine) as s:
        return int(s.exec(select(func.count()).select_from(AccessLog)
                          .where(AccessLog.action == action)).one())


def test_a_double_submitted_organisation_upload_loads_once_and_shows_the_first_result(
        web: Any) -> None:
    app, _clock, rt = web
    admin = sign_in(app, "admin.max")
    key = form_key(admin.get("/admin").text, "/admin/org")
    changed = (DATA / "org.yaml").read_text().replace("Riverside Borough Council",
                                                       "Renamed Borough Council").encode()
    before = (counts(rt), audit_rows(rt, "org_load"))

    def upload(content: bytes, key: str = key) -> Any:
        return admin.post("/admin/org", data={"csrf_token": admin.csrf,
                                              "idempotency_key": key},
                          files={"file": ("org.yaml", content, "application/yaml")})

    first = upload(changed)
    assert first.status_code == 200 and "Loaded Renamed Borough Council" in first.text
    done = banner(first.text)
    assert done, first.text
    after_first = (counts(rt), audit_rows(rt, "org_load"))
    assert after_first[1] == before[1] + 1
    again = upload(changed)
    assert again.status_code == 200 and banner(again.text) == done  # the first message
    assert (counts(rt), audit_rows(rt, "org_load")) == after_first  # loaded nothing
    # Another file with the same key: refused, saying so, nothing loaded.
    other = upload((DATA / "org.yaml").read_bytes())
    assert other.status_code == 400 and "used for a different request" in other.text
    assert (counts(rt), audit_rows(rt, "org_load")) == after_first
    # The page offers a fresh key: loading the file again is a new submission.
    fresh = form_key(again.text, "/admin/org")
    assert fresh != key
    assert upload(changed, fresh).status_code == 200
    assert audit_rows(rt, "org_load") == after_first[1] + 1


def test_double_submitted_cover_and_closure_forms_change_nothing_the_second_time(
        web: Any) -> None:
    app, _clock, rt = web
    admin = sign_in(app, "admin.max")
    period = {"person": "iro.ada", "deputy": "irom.cat", "starts": "2027-03-01",
              "ends": "2027-03-05", "reason": "Annual leave"}

    def written() -> dict[str, int]:
        return {**counts(rt), **{a: audit_rows(rt, a) for a in ("cover_set", "cover_end")}}

    def twice(action: str, page: str, fields: dict[str, str]) -> tuple[Any, Any, dict[str, int]]:
        form = {"csrf_token": admin.csrf, "idempotency_key": form_key(
            admin.get(page).text, action), **fields}
        first = admin.post(action, data=form, follow_redirects=False)
        after = written()
        again = admin.post(action, data=form, follow_redirects=False)
        assert written() == after  # no second cover, event or e-mail
        return first, again, after

    first, again, after = twice("/cover", "/cover", period)
    assert first.status_code == 303 and after["cover_set"] == 1 and after["mail"] > 0
    assert (again.status_code, again.headers["location"]) == (303, "/cover?done=set")

    first, again, after = twice("/cover/end", "/cover", {"person": "iro.ada"})
    assert first.status_code == 303 and after["cover_end"] == 1
    assert (again.status_code, again.headers["location"]) == (303, "/cover?done=end")

    raised(rt, _clock)
    first, again, _after = twice("/admin/closures", "/admin/closures",
                                 {"day": "2027-03-04", "reason": "Council offices closed"})
    assert first.status_code == 200 and "recomputed" in first.text
    done = banner(first.text)
    assert done and again.status_code == 200 and banner(again.text) == done
