"""A page per child, search by child reference or alert number, and the print view of an
alert for the child's file. What a person sees is the access policy's (drp/ladder/access.py),
asked through the service layer's queries (each audited); a child or alert the person may not
see answers 404, the same as one that does not exist. The IRO manager's subject access
export of a child's whole record (drp.subject_access, `drp child export` on the command line)
is a button on the child's page."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import subject_access
from ...alerts.records import EVENT_WORDS
from ...casenotes_print import printable
from ...errors import NotFound
from ...ladder.access import may_export_child
from ..deps import ClockDep, CurrentUser, Page, PostedFields, RuntimeDep, Work, origin_of

router = APIRouter(include_in_schema=False)

SEARCH_MAX = 40  # a child's reference is at most 40 characters
# A reference (letters, digits and - _ / .) or an alert's number, with or without "#".
SEARCHABLE = re.compile(r"#?[A-Za-z0-9][A-Za-z0-9/_.-]*")
# An alert's number as people write it: "Alert 9", "alert #9", "alert no. 9", "alert number 9".
ALERT_WORDS = re.compile(r"alert\s*(?:(?:no|number|num)\b\.?)?\s*#?\s*(\d{1,10})",
                         re.IGNORECASE)


def search_text(q: str) -> str:
    """What a search box's text asks for: an alert's number written in words is that number
    with "#" (an alert only, as "#9" asks); anything else as typed."""
    words = ALERT_WORDS.fullmatch(q)
    return f"#{words.group(1)}" if words else q


@router.get("/children/{ref:path}", response_class=HTMLResponse)
def child_page(user: CurrentUser, work: Work, page: Page, ref: str) -> Response:
    if len(ref) > SEARCH_MAX:
        raise NotFound("there is no such child")
    with work() as svc:
        child = svc.child_file(ref, user.username)
    return page("children.html", user, title=f"Child {child.ref}", child=child,
                may_export=may_export_child(user.roles))


@router.post("/children/{ref:path}/export")
def export_child(request: Request, rt: RuntimeDep, clock: ClockDep, user: CurrentUser,
                 form: PostedFields, ref: str) -> Response:
    """Everything drp holds about the child, to download (subject access): JSON, or (the
    form's `format` pdf) the same document as a PDF to read and print, as `drp child export
    --format json|pdf` gives them. A plain `def`: the export's queries run in a worker
    thread, not on the event loop. Only an IRO manager may (access.may_export_child, asked
    by export_child); anyone else, and a child that does not exist, get the same 404, and
    the refusal is in the access log as the export is. No one-time key: an export changes
    nothing but the log, and a second click is a second export, recorded as one."""
    if len(ref) > SEARCH_MAX:
        raise NotFound("there is no such child")
    pdf = form.get("format") == "pdf"
    document = subject_access.export_child(rt.engine, ref=ref, username=user.username,
                                           now=clock.now(), origin=origin_of(request))
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", ref)
    if pdf:
        return _download(subject_access.as_pdf(document, rt.settings.tz), "application/pdf",
                         f"child-{safe}.pdf")
    return _download((json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode(),
                     "application/json", f"child-{safe}.json")


def _download(data: bytes, media_type: str, filename: str) -> Response:
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store"})


@router.get("/alerts/{alert_id}/casenotes.{fmt}")
def casenotes(work: Work, user: CurrentUser, alert_id: int, fmt: str) -> Response:
    """The alert's case notes for the child's file, as `drp export casenote ALERT --format
    pdf|text` gives them (drp.casenotes.printable): for whoever may see the alert (404
    otherwise), recorded in the access log as a print."""
    formats = {"pdf": ("pdf", "application/pdf"), "txt": ("text", "text/plain; charset=utf-8")}
    if fmt not in formats:
        raise NotFound("there is no such page")
    kind, media_type = formats[fmt]
    with work() as svc:
        printed = printable(svc, alert_id, user.username, kind)
    return _download(printed.data, media_type, f"alert-{alert_id}-casenotes.{fmt}")


@router.get("/search", response_class=HTMLResponse)
def search(request: Request, user: CurrentUser, work: Work, page: Page) -> Response:
    q = request.query_params.get("q", "").strip()
    asked = search_text(q)
    usable = len(asked) <= SEARCH_MAX and SEARCHABLE.fullmatch(asked) is not None
    if not usable:
        return page("search.html", user, title="Nothing found" if q else "Search",
                    q=q[:SEARCH_MAX], found=None, usable=False, asked=bool(q))
    with work() as svc:
        found = svc.search(asked, user.username)
    # One thing found: go to it.
    if found.alert is not None and not found.children:
        return RedirectResponse(f"/alerts/{found.alert}", 303)
    if found.alert is None and (found.exact or len(found.children) == 1):
        return RedirectResponse(f"/children/{quote(found.exact or found.children[0])}", 303)
    title = "Search results" if found.alert or found.children else "Nothing found"
    return page("search.html", user, title=title, q=q, found=found, usable=True, asked=True)


@router.get("/alerts/{alert_id}/print", response_class=HTMLResponse)
def print_view(user: CurrentUser, work: Work, page: Page, alert_id: int) -> Response:
    with work() as svc:
        record = svc.print_file(alert_id, user.username)
    return page("print.html", user, title=f"Alert {alert_id} for the child's file",
                file=record, event_words=EVENT_WORDS)
