"""The administration pages: the protocol in force, loading the organisation file and council
closure days; and the cover periods page (who deputises for whom: set, listed, ended), for
whoever the service lets record cover. Each change is
the service layer's (drp.alerts.organisation, drp.alerts.closures), which decides who may."""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import idempotency
from ...alerts import AlertService
from ...configfile import MAX_FILE_BYTES
from ...errors import BadValue, DrpError
from ...org import parse_org
from ...runtime import Runtime
from ..deps import (
    Administrator,
    CurrentUser,
    Page,
    PageRenderer,
    PostedFields,
    PostedForm,
    RuntimeDep,
    SignedInUser,
    UnitOfWork,
    Work,
)
from ..forms import Problems, date_input, once_only, refused
from ..ladder_svg import ladder_svg
from . import admin_people

router = APIRouter(include_in_schema=False)
router.include_router(admin_people.router)  # people's sign-in: unlock, reset, who signed in


FAILED_SHOWN = 50  # the newest; `drp outbox list --failed` lists them all


def _failed_mail(rt: Runtime) -> tuple[list[Any], int]:
    """Messages given up on (refused, no address, too many attempts), newest first, with why:
    what an administrator must act on. The minimum: who, which message, which alert, why."""
    from sqlalchemy import func
    from sqlalchemy import select as sa_select
    from sqlmodel import Session, col, select

    from notifications.models import OutboxMessage

    from ...models import Person

    failed = col(OutboxMessage.status) == "failed"
    with Session(rt.engine) as session:
        rows = session.execute(
            sa_select(col(OutboxMessage.id), col(OutboxMessage.message),
                      col(OutboxMessage.alert_id), col(OutboxMessage.recipient),
                      col(OutboxMessage.attempts), col(OutboxMessage.last_error),
                      col(Person.name).label("name"))
            .outerjoin(Person, col(Person.username) == col(OutboxMessage.recipient))
            .where(failed).order_by(col(OutboxMessage.id).desc()).limit(FAILED_SHOWN)).all()
        total = session.exec(select(func.count()).select_from(OutboxMessage).where(failed)).one()
    return list(rows), int(total)


def _admin_page(rt: Runtime, user: SignedInUser, page: PageRenderer, status: int = 200,
                **values: Any) -> Response:
    failed, failed_total = _failed_mail(rt)
    values.setdefault("notice", values.pop("done", None))
    return page("admin.html", user, status=status, protocol=rt.protocol, failed=failed,
                failed_total=failed_total, form_key=idempotency.new_key, **values)


@router.get("/admin", response_class=HTMLResponse)
def admin(rt: RuntimeDep, user: Administrator, page: Page) -> Response:
    return _admin_page(rt, user, page)


@router.get("/admin/protocol.svg")
def protocol_svg(rt: RuntimeDep, _user: Administrator) -> Response:
    """The ladder drawn top to bottom by the stages' titles, as wide as the page."""
    return Response(ladder_svg(rt.protocol), media_type="image/svg+xml")


@router.post("/admin/org", response_class=HTMLResponse)
def load_organisation(request: Request, rt: RuntimeDep, user: Administrator,
                      form: PostedForm, page: Page, work: Work) -> Response:
    """A plain `def`: FastAPI runs it on its thread pool, so reading the upload, parsing the
    file and the database work never hold the event loop (PostedForm was read before).
    The file is read and checked (parsed and validated) before any transaction opens, so a
    slow or refused file never holds the database's write lock (SQLite has one for all).
    The form's one-time key is claimed with the file's sha256 as its content: the same upload
    sent again shows the first load's message and loads nothing."""
    upload = form.get("file")
    data = upload.file.read(MAX_FILE_BYTES + 1) \
        if upload is not None and not isinstance(upload, str) else b""
    if not data:
        return _admin_page(rt, user, page, status=400,
                           errors=[("file", "Choose the organisation file (YAML) to load")])
    if len(data) > MAX_FILE_BYTES:
        return _admin_page(rt, user, page, status=400,
                           errors=[("file", f"The file must be smaller than {MAX_FILE_BYTES:,}"
                                            " bytes")])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "organisation.yaml"
        path.write_bytes(data)
        try:
            parse_org(path, rt.protocol)  # outside the transaction: refused before it opens
            # Open alerts follow their children in the same transaction (transfers).
            key = form.get(idempotency.FORM_FIELD)
            content = {idempotency.FORM_FIELD: key if isinstance(key, str) else "",
                       "file_sha256": hashlib.sha256(data).hexdigest()}
            done = once_only(request, content, work, user.username, lambda svc: " ".join(
                svc.load_organisation(path, user.username).lines()))
        except DrpError as exc:
            message = exc.message.replace(str(path), "the file")
            return _admin_page(rt, user, page, status=400,
                               errors=[("file", message[:1].upper() + message[1:])])
    return _admin_page(rt, user, page, done=done)


# -- cover periods ------------------------------------------------------------------------
# Not only an administrator's: an IRO manager records cover for an IRO, a manager for those
# below them on a team's line (access.may_set_cover, asked by the service). Anyone signed in
# may read the list (no child's record). People are chosen and shown by name; the form posts
# their usernames (person, deputy) and GOV.UK's date inputs (starts-day ..., ends-year).
COVER_FIELDS = (("deputy", "deputy"), ("first day", "starts"), ("last day", "ends"),
                ("reason", "reason"), ("person", "person"))
COVER_DONE = {"set": "The cover period was recorded; both people were told.",
              "end": "The cover was ended; both people were told."}
# A command line's advice in brackets ("(drp cover end iro.ada)"): the page has its buttons.
_CLI_ADVICE = re.compile(r" \([^()]*\bdrp [a-z]+[^()]*\)")


def _cover_people(svc: AlertService, username: str) -> tuple[list[Any], list[Any]]:
    """The active people by name: those this person may record cover for (the service's own
    rule, access.may_set_cover, asked of each) and all who might be named as a deputy (the
    service refuses one on the wrong side of the IRO's independence, saying why)."""
    from sqlmodel import col, select

    from ...alerts.unit import known_id
    from ...ladder import access
    from ...models import Person

    actor = svc.actor(username)
    people = svc.s.exec(select(Person).where(col(Person.active))
                        .order_by(col(Person.name), col(Person.username))).all()
    return [p for p in people if access.may_set_cover(svc.s, actor, known_id(p.id))], \
        list(people)


def _by_name(errors: list[tuple[str, str]], names: dict[str, str]) -> list[tuple[str, str]]:
    """The service's refusals name people by username: a page says their names (a username
    may have been capitalised, starting the message)."""
    if not names:
        return errors
    lower = {u.lower(): n for u, n in names.items()}
    known = re.compile(r"(?<![\w.-])(" + "|".join(
        re.escape(u) for u in sorted(lower, key=len, reverse=True)) + r")(?![\w.-])", re.I)
    return [(field, known.sub(lambda m: lower[m.group(1).lower()], message))
            for field, message in errors]


def _cover_page(user: SignedInUser, work: UnitOfWork, page: PageRenderer, status: int = 200,
                **values: Any) -> Response:
    from ...ladder.access import WHO_SETS_COVER

    with work() as svc:
        covers = svc.list_covers(user.username)
        choices, deputies = _cover_people(svc, user.username)
    names = {p.username: p.name for p in deputies}
    names.update(_names(work, {c.set_by for c in covers} - set(names)))
    if values.get("errors"):
        values["errors"] = _by_name(values["errors"], names)
    values.setdefault("notice", values.pop("done", None))
    return page("admin_cover.html", user, status=status, covers=covers, names=names,
                choices=choices, deputies=deputies, who_sets_cover=WHO_SETS_COVER,
                may_end={p.username for p in choices}, form=values.pop("form", {}),
                form_key=idempotency.new_key, **values)


@router.get("/cover", response_class=HTMLResponse)
def cover(user: CurrentUser, work: Work, page: Page) -> Response:
    return _cover_page(user, work, page, done=COVER_DONE.get(page.request.query_params.get(
        "done", "")))


def _refuse(problem: BadValue | None) -> None:
    if problem is not None:
        raise problem


def _cover_refused(exc: DrpError, who: str) -> dict[str, Any]:
    """A refusal as the cover page shows it: in the page's words, without the command
    line's advice; names come in _cover_page."""
    exc.message = _CLI_ADVICE.sub("", exc.message)
    shown = refused(exc, COVER_FIELDS, default="person", who=who)
    shown["errors"] = [(field, re.sub(r"\bcover for you\b", "cover for yourself", message))
                       for field, message in shown["errors"]]
    return shown


@router.post("/cover", response_class=HTMLResponse)
def set_cover(request: Request, user: CurrentUser, form: PostedFields, work: Work,
              page: Page) -> Response:
    """Every problem of the form at once, each field checked by the service layer's rules
    (drp.org.cover_problem, the reason's limit); the service still decides, and says who
    may record cover for whom, and what clashes with cover already recorded."""
    from ...alerts.inputs import text
    from ...alerts.organisation import REASON_MAX
    from ...clock import FIRST_DATE
    from ...org import cover_problem

    person, deputy = form.get("person", "").strip(), form.get("deputy", "").strip()
    try:
        problems = Problems(who=user.username)
        if not person:
            problems.add("person", "Select who is away")
        if not deputy:
            problems.add("deputy", "Select who covers for them")
        elif person:  # only the deputy is asked here: the days are the dates' own check
            problems.check("deputy", lambda: _refuse(cover_problem(
                person, deputy, FIRST_DATE, FIRST_DATE)))
        starts = problems.check("starts", lambda: date_input(form, "starts", "the first day",
                                                             required=True))
        ends = problems.check("ends", lambda: date_input(form, "ends", "the last day",
                                                         required=True))
        if starts is not None and ends is not None:  # two stand-ins: only the days asked
            problems.check("ends", lambda: _refuse(cover_problem("-", "--", starts, ends)))
        reason = problems.check("reason", lambda: text(
            form.get("reason"), "the reason", required=False, limit=REASON_MAX))
        problems.raise_any()
        assert starts is not None and ends is not None

        def change(svc: AlertService) -> str:
            svc.set_cover(user.username, person, deputy, starts, ends, reason)
            return "/cover?done=set"

        url = once_only(request, form, work, user.username, change)
    except DrpError as exc:
        return _cover_page(user, work, page, status=exc.http_status, form=form,
                           **_cover_refused(exc, user.username))
    return RedirectResponse(url, 303)


@router.post("/cover/end", response_class=HTMLResponse)
def end_cover(request: Request, user: CurrentUser, form: PostedFields, work: Work,
              page: Page) -> Response:
    """A cover period's End button: every period of that person's running or still to
    come ends now (the service's end_cover)."""
    def change(svc: AlertService) -> str:
        svc.end_cover(user.username, form.get("person", "").strip())
        return "/cover?done=end"

    try:
        url = once_only(request, form, work, user.username, change)
    except DrpError as exc:
        refusal = _cover_refused(exc, user.username)
        refusal["errors"] = [("covers", message) for _field, message in refusal["errors"]]
        return _cover_page(user, work, page, status=exc.http_status, **refusal)
    return RedirectResponse(url, 303)


def _names(work: UnitOfWork, usernames: set[str]) -> dict[str, str]:
    """People's names by username (a page shows names, never usernames)."""
    from sqlmodel import Session, col, select

    from ...models import Person

    with Session(work.rt.engine) as session:
        return {u: n for u, n in session.exec(select(Person.username, Person.name).where(
            col(Person.username).in_(usernames)))}


# -- closure days -------------------------------------------------------------------------
def _closures_page(user: SignedInUser, work: UnitOfWork, page: PageRenderer,
                   status: int = 200, **values: Any) -> Response:
    with work() as svc:
        days = svc.closures()
    values.setdefault("names", _names(work, {d.created_by for d in days}))
    values.setdefault("notice", values.pop("done", None))
    return page("admin_closures.html", user, status=status, days=days,
                form=values.pop("form", {}), form_key=idempotency.new_key, **values)


@router.get("/admin/closures", response_class=HTMLResponse)
def closures(user: Administrator, work: Work, page: Page) -> Response:
    return _closures_page(user, work, page)


@router.post("/admin/closures", response_class=HTMLResponse)
def close_day(request: Request, user: Administrator, form: PostedFields, work: Work,
              page: Page) -> Response:
    """The page shows what was done; sent again with its one-time key, the first message.
    Every problem of the form is listed at once (the day's and the reason's)."""
    try:
        problems = Problems(who=user.username)
        day = problems.check("day", lambda: date_input(form, "day", "the closure day",
                                                       required=True))
        if not form.get("reason", "").strip():
            problems.add("reason", "Enter the reason for the closure")
        problems.raise_any()
        assert day is not None

        def change(svc: AlertService) -> str:
            result = svc.close_day(user.username, day, form.get("reason", ""))
            moved = ", ".join(f"alert {m.alert_id}" for m in result.moved)
            return (f"{result.day:%-d %B %Y} is a closure day: "
                    + (f"the due dates of {moved} were recomputed and the people concerned"
                       " told." if moved
                       else "no open due date fell on or after it within its clock."))

        done = once_only(request, form, work, user.username, change)
    except DrpError as exc:
        return _closures_page(user, work, page, status=exc.http_status, form=form,
                              **refused(exc, (("reason", "reason"),), default="day",
                                        who=user.username))
    return _closures_page(user, work, page, done=done)
