"""The JSON API under /api: the same operations and the same access rules as the pages and
the command line. Authenticate with `Authorization: Bearer <token>` (drp user token), or a
signed-in session plus the X-CSRF-Token header for changes. Every change may send an
Idempotency-Key header (drp.idempotency): sent again, the first answer comes back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from ... import idempotency
from ...alerts import ActionIn, AlertService, inputs
from ...alerts.commands import CAFCASS_RESPONSES
from ...errors import BadValue
from ...schemas import AlertDetail, AlertView
from ..deps import ApiReader as Reader
from ..deps import ApiWriter as Writer
from ..deps import UnitOfWork, Work


class Refusal(BaseModel):
    """A refused request (nothing was changed): what is wrong and how to fix it, and the
    body's field it is about where one is."""

    detail: str
    field: str | None = None


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationRefusal(BaseModel):
    """FastAPI's own check of a request against this schema."""

    detail: list[ValidationIssue]


# The refusals every operation may answer with (drp.web.app turns the service's DrpError into
# these). 422 is either drp's refusal or FastAPI's check of the request against this schema.
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Refusal, "description": "not signed in: send a bearer token"},
    403: {"model": Refusal, "description": "not permitted (or a session without its CSRF"
                                           " token)"},
    404: {"model": Refusal, "description": "no such record, or one the caller may not see"},
    409: {"model": Refusal, "description": "not possible at the alert's stage or status, or"
                                           " changed by someone else meanwhile"},
    422: {"model": Refusal | ValidationRefusal,
          "description": "a value refused: drp's sentence and field, or the schema's check"},
}
router = APIRouter(prefix="/api", tags=["alerts"], responses=REFUSALS)


class Body(BaseModel):
    """A request's body: a field drp does not know is refused (422 naming it), not ignored (a
    misspelt `separate` or `actions` would otherwise be dropped without a word)."""

    model_config = ConfigDict(extra="forbid")


class RaiseIn(Body):
    child: str = Field(pattern=inputs.PLAIN_PATTERN,
                       max_length=40)
    summary: str = Field(pattern=inputs.TEXT_PATTERN,
                         max_length=inputs.SUMMARY_MAX)
    detail: str | None = Field(pattern=inputs.TEXT_PATTERN,
                               default=None, max_length=inputs.DETAIL_MAX)
    impact: str | None = Field(pattern=inputs.TEXT_PATTERN,
                               default=None, max_length=inputs.TEXT_MAX)
    outcome_wanted: str | None = Field(pattern=inputs.TEXT_PATTERN,
                                       default=None, max_length=inputs.TEXT_MAX)
    theme: str | None = Field(pattern=inputs.PLAIN_PATTERN,
                              default=None, max_length=64)
    stage: str | None = Field(pattern=inputs.PLAIN_PATTERN,
                              default=None, max_length=32)
    due: date | None = Field(
        default=None, description="the informal stage's due date, the IRO's choice (default"
                                  " and most: the protocol's); not for a formal stage")
    kind: Literal["concern", "good_practice"] = Field(
        default="concern", description="good_practice: a record of good practice on the"
                                       " child's case (what, and who in the team in `detail`):"
                                       " no ladder, no clock, closed at once")
    separate: bool = Field(
        default=False, description="confirms a separate matter when the child already has an"
                                   " open concern (refused with 409 otherwise, naming it)")


class ActionInModel(Body):
    text: str = Field(pattern=inputs.TEXT_PATTERN,
                      max_length=inputs.ACTION_MAX)
    due: date
    owner: str | None = Field(pattern=inputs.PLAIN_PATTERN,
                              default=None, max_length=80)


class RespondIn(Body):
    message: str = Field(pattern=inputs.TEXT_PATTERN,
                         max_length=inputs.DETAIL_MAX)
    actions: list[ActionInModel] = Field(default_factory=list, max_length=20)


class EscalateIn(Body):
    reason: str = Field(pattern=inputs.TEXT_PATTERN,
                        max_length=inputs.TEXT_MAX)
    to: str | None = Field(pattern=inputs.PLAIN_PATTERN,
                           default=None, max_length=32)


class OutcomeIn(Body):
    outcome: str = Field(pattern=inputs.TEXT_PATTERN,
                         max_length=inputs.TEXT_MAX)


class ReasonIn(Body):
    reason: str = Field(pattern=inputs.TEXT_PATTERN,
                        max_length=inputs.TEXT_MAX)


class HoldIn(Body):
    reason: str = Field(pattern=inputs.TEXT_PATTERN,
                        max_length=inputs.TEXT_MAX)
    until: date = Field(description="the day to look at it again: after today, at most the"
                                    " protocol's max_hold_working_days away")


class ExtendIn(Body):
    until: date
    reason: str = Field(pattern=inputs.TEXT_PATTERN,
                        max_length=inputs.TEXT_MAX)


class ReferIn(Body):
    reason: str = Field(pattern=inputs.TEXT_PATTERN,
                        max_length=inputs.TEXT_MAX)
    legal_advice: str = Field(
        pattern=inputs.TEXT_PATTERN, min_length=1, max_length=inputs.LEGAL_ADVICE_MAX,
        description="who gave the independent legal advice, taken after consulting the IRO"
                    " manager (required)")
    advised_on: date | None = Field(
        default=None, description="the day the advice was given; not after today")
    legal_advice_taken: bool | None = Field(
        default=None, deprecated=True,
        description="no longer enough on its own: legal_advice (who advised) is required;"
                    " accepted and ignored beside it")

    @model_validator(mode="before")
    @classmethod
    def _only_the_old_flag(cls, data: Any) -> Any:
        if isinstance(data, dict) and "legal_advice" not in data \
                and "legal_advice_taken" in data:
            raise ValueError("legal_advice_taken is no longer enough: give legal_advice, who"
                             " gave the legal advice (and advised_on, when)")
        return data


class CafcassIn(Body):
    response: str = Field(
        max_length=32, json_schema_extra={"enum": list(CAFCASS_RESPONSES)},
        description="Cafcass's response: " + "; ".join(
            f"{k}: Cafcass {v}" for k, v in CAFCASS_RESPONSES.items()))
    note: str | None = Field(pattern=inputs.TEXT_PATTERN,
                             default=None, max_length=inputs.TEXT_MAX)


class MoveIn(Body):
    child: str = Field(pattern=inputs.PLAIN_PATTERN,
                       max_length=40, description="the right child's reference")
    reason: str = Field(pattern=inputs.TEXT_PATTERN,
                        max_length=inputs.TEXT_MAX)


class LinkIn(Body):
    other: int = Field(gt=0, lt=2**31, description="the related alert's number")


class ThemeIn(Body):
    theme: str = Field(pattern=inputs.PLAIN_PATTERN,
                       max_length=64)


class Me(BaseModel):
    username: str
    name: str
    roles: list[str]


def detail(work: UnitOfWork, aid: int, who: str) -> dict[str, Any]:
    with work() as svc:
        return svc.show(aid, who).public()


# -- a change, once (the IETF httpapi draft's Idempotency-Key header) -------------------------
KEY_HELP = (
    "Optional, on every change: a unique key of your choosing (a UUID; 1 to 128 visible ASCII"
    " characters, quoted or not) that makes the request safe to send again. drp records the"
    " key with the first answer in the change's own transaction and keeps it 24 hours: the"
    " same key from the same person with the same body gets that answer again (status and"
    " body, with `Idempotency-Replayed: true`) and changes nothing, even when the two requests"
    " arrive together. The same key with a different body or operation is refused with 422;"
    " keys are each person's own (another person's key of the same spelling is theirs, apart)."
    " A refused request records nothing: its key may be sent again."
    " Without the header a request is done each time it is sent.")


async def request_once(request: Request, key: Annotated[str | None, Header(
        alias=idempotency.HEADER, description=KEY_HELP,
        json_schema_extra={"pattern": idempotency.KEY_PATTERN})] = None) -> idempotency.Once | None:
    if key is None:
        return None
    return idempotency.Once(idempotency.checked(key, idempotency.HEADER),
                            f"{request.method} {request.url.path}",
                            idempotency.body_fingerprint(await request.body()))


Once = Annotated[idempotency.Once | None, Depends(request_once)]


@lru_cache(maxsize=16)
def _shape(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def answer(work: UnitOfWork, who: str, once: idempotency.Once | None, model: Any,
           change: Callable[[AlertService], Any], status: int = 200) -> Any:
    """The change and its answer in one transaction, with the request's key if it sent one:
    the key's first answer if it was sent before (nothing done), else the change's."""
    with work() as svc:
        first = once.claim(svc.s, who, svc.now) if once else None
        if first is not None:
            return Response(first.result, first.status, media_type="application/json",
                            headers={"Idempotency-Replayed": "true"})
        result = change(svc)
        if once is None:
            return result
        shape = _shape(model)
        response = JSONResponse(shape.dump_python(shape.validate_python(result), mode="json",
                                                  by_alias=True), status)
        once.record(svc.s, who, status, bytes(response.body).decode())
    return response


def changed(work: UnitOfWork, who: str, once: idempotency.Once | None, alert_id: int | None,
            act: Callable[[AlertService], Any], status: int = 200) -> Any:
    """`act` on an alert, answered with the alert as it then is (`alert_id`, or the id of the
    alert `act` returned)."""
    def change(svc: AlertService) -> dict[str, Any]:
        done = act(svc)
        return svc.show(int(done.id) if alert_id is None else alert_id, who).public()

    return answer(work, who, once, AlertDetail, change, status)


@router.get("/me", response_model=Me)
def me(who: Reader, work: Work) -> Me:
    with work() as svc:
        actor = svc.actor(who)  # the person and roles as the access policy loads them
    return Me(username=who, name=actor.name, roles=sorted(actor.roles))


@router.get("/alerts", response_model=list[AlertView])
def list_alerts(who: Reader, work: Work, status: str | None = None, team: str | None = None,
                stage: str | None = None, theme: str | None = None) -> list[AlertView]:
    with work() as svc:
        return list(svc.list_alerts(who, status, team=team, stage=stage, theme=theme))


@router.get("/alerts/{alert_id}", response_model=AlertDetail)
def show(who: Reader, work: Work, alert_id: int) -> dict[str, Any]:
    return detail(work, alert_id, who)


@router.post("/alerts", response_model=AlertDetail, status_code=201)
def raise_alert(who: Writer, work: Work, once: Once, body: RaiseIn) -> Any:
    """Raise a concern, or (kind good_practice) record good practice."""
    def act(svc: AlertService) -> Any:
        if body.kind == "good_practice":  # the service refuses a concern's fields
            return svc.record_good_practice(
                who, body.child, body.summary, detail=body.detail, theme=body.theme,
                stage=body.stage, due=body.due, impact=body.impact,
                outcome_wanted=body.outcome_wanted)
        return svc.raise_alert(who, body.child, body.summary, detail=body.detail,
                               impact=body.impact, outcome_wanted=body.outcome_wanted,
                               theme=body.theme, stage=body.stage, due_on=body.due,
                               separate=body.separate)

    return changed(work, who, once, None, act, 201)


@router.post("/alerts/{alert_id}/respond", response_model=AlertDetail)
def respond(who: Writer, work: Work, once: Once, alert_id: int, body: RespondIn) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.respond(
        alert_id, who, body.message, [ActionIn(a.text, a.due, a.owner) for a in body.actions]))


@router.post("/alerts/{alert_id}/escalate", response_model=AlertDetail)
def escalate(who: Writer, work: Work, once: Once, alert_id: int, body: EscalateIn) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.escalate(
        alert_id, who, body.reason, to=body.to))


@router.post("/alerts/{alert_id}/resolve", response_model=AlertDetail)
def resolve(who: Writer, work: Work, once: Once, alert_id: int, body: OutcomeIn) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.resolve(alert_id, who, body.outcome))


@router.post("/alerts/{alert_id}/withdraw", response_model=AlertDetail)
def withdraw(who: Writer, work: Work, once: Once, alert_id: int, body: ReasonIn) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.withdraw(alert_id, who, body.reason))


@router.post("/alerts/{alert_id}/hold", response_model=AlertDetail)
def hold(who: Writer, work: Work, once: Once, alert_id: int, body: HoldIn) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.hold(
        alert_id, who, body.reason, body.until))


@router.post("/alerts/{alert_id}/resume", response_model=AlertDetail)
def resume(who: Writer, work: Work, once: Once, alert_id: int) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.resume(alert_id, who))


@router.post("/alerts/{alert_id}/extend", response_model=AlertDetail)
def extend(who: Writer, work: Work, once: Once, alert_id: int, body: ExtendIn) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.extend(
        alert_id, who, body.until, body.reason))


@router.post("/alerts/{alert_id}/refer", response_model=AlertDetail)
def refer(who: Writer, work: Work, once: Once, alert_id: int, body: ReferIn) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.refer(
        alert_id, who, body.reason, legal_advice=body.legal_advice, advised_on=body.advised_on))


@router.post("/alerts/{alert_id}/cafcass", response_model=AlertDetail)
def cafcass(who: Writer, work: Work, once: Once, alert_id: int, body: CafcassIn) -> Any:
    """Record Cafcass's response to the referral (`cafcass.response` in the alert)."""
    return changed(work, who, once, alert_id, lambda svc: svc.cafcass_response(
        alert_id, who, body.response, body.note))


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertDetail)
def acknowledge(who: Writer, work: Work, once: Once, alert_id: int) -> Any:
    """The person responsible at the current stage (or their cover) has seen the alert;
    acknowledged is not responded."""
    return changed(work, who, once, alert_id, lambda svc: svc.acknowledge(alert_id, who))


@router.post("/alerts/{alert_id}/move", response_model=AlertDetail)
def move(who: Writer, work: Work, once: Once, alert_id: int, body: MoveIn) -> Any:
    """A misfiled alert to the right child (the allocated IRO or an IRO manager)."""
    return changed(work, who, once, alert_id, lambda svc: svc.move(
        alert_id, who, body.child, body.reason))


@router.post("/alerts/{alert_id}/link", response_model=AlertDetail)
def link(who: Writer, work: Work, once: Once, alert_id: int, body: LinkIn) -> Any:
    """Link a related alert (siblings, the same matter): `related` in both."""
    return changed(work, who, once, alert_id, lambda svc: svc.link(alert_id, body.other, who))


@router.post("/alerts/{alert_id}/reopen", response_model=AlertDetail)
def reopen(who: Writer, work: Work, once: Once, alert_id: int, body: ReasonIn) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.reopen(alert_id, who, body.reason))


@router.post("/alerts/{alert_id}/theme", response_model=AlertDetail)
def theme(who: Writer, work: Work, once: Once, alert_id: int, body: ThemeIn) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.set_theme(alert_id, who, body.theme))


@router.post("/alerts/{alert_id}/actions/{action_no}/done", response_model=AlertDetail)
def action_done(who: Writer, work: Work, once: Once, alert_id: int, action_no: int) -> Any:
    return changed(work, who, once, alert_id, lambda svc: svc.action_done(
        alert_id, action_no, who))


# -- cover periods and closure days (the organisation's, not a child's record) ----------------
class CoverIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    person: str = Field(max_length=80, description="who is away (username)")
    deputy: str = Field(max_length=80, description="who covers for them (username)")
    starts: date = Field(alias="from", description="the first day (included)")
    ends: date = Field(alias="to", description="the last day (included)")
    reason: str | None = Field(default=None, max_length=500)


class CoverOut(BaseModel):
    """A cover period, as `drp cover list --json` prints it."""

    model_config = ConfigDict(populate_by_name=True)

    person: str
    deputy: str
    starts: date = Field(alias="from")
    ends: date = Field(alias="to")
    reason: str | None
    source: str
    set_by: str
    set_at: datetime
    ended_at: datetime | None
    state: str


class PersonIn(BaseModel):
    person: str = Field(max_length=80, description="whose cover ends (username)")


class ClosureIn(BaseModel):
    day: date
    reason: str = Field(max_length=500)


class ClosureOut(BaseModel):
    day: date
    reason: str
    created_by: str
    created_at: datetime
    moved: list[int] = Field(default_factory=list,
                             description="the alerts whose due dates the day moved")


COVER_FIELDS = {"starts": "from", "ends": "to"}  # the service's names for the body's keys


@router.get("/cover", response_model=list[CoverOut], tags=["organisation"])
def covers(who: Reader, work: Work) -> list[dict[str, Any]]:
    """Every cover period, earliest first."""
    with work() as svc:
        return [c.public() for c in svc.list_covers(who)]


@router.post("/cover", response_model=CoverOut, status_code=201, tags=["organisation"])
def set_cover(who: Writer, work: Work, once: Once, body: CoverIn) -> Any:
    """Record that `deputy` covers `person` (an administrator, an IRO manager for an IRO, or a
    manager above the person on a team's line)."""
    try:
        return answer(work, who, once, CoverOut, lambda svc: svc.set_cover(
            who, body.person, body.deputy, body.starts, body.ends, body.reason).public(), 201)
    except BadValue as exc:
        field = COVER_FIELDS.get(exc.field or "", exc.field)
        raise BadValue(exc.message, field=field) from None


@router.post("/cover/end", response_model=list[CoverOut], tags=["organisation"])
def end_cover(who: Writer, work: Work, once: Once, body: PersonIn) -> Any:
    """End the person's cover running or still to come."""
    return answer(work, who, once, list[CoverOut], lambda svc: [
        c.public() for c in svc.end_cover(who, body.person)])


@router.get("/closures", response_model=list[ClosureOut], tags=["organisation"])
def closure_days(who: Reader, work: Work) -> list[dict[str, Any]]:
    """The council's closure days, oldest first."""
    with work() as svc:
        return [c.public() for c in svc.closures()]


@router.post("/closures", response_model=ClosureOut, status_code=201, tags=["organisation"])
def close_day(who: Writer, work: Work, once: Once, body: ClosureIn) -> Any:
    """Add a closure day (an administrator): the open due dates it falls within move on."""
    def change(svc: AlertService) -> dict[str, Any]:
        result = svc.close_day(who, body.day, body.reason)
        view = next(c for c in svc.closures() if c.day == result.day)
        return {**view.public(), "moved": [m.alert_id for m in result.moved]}

    return answer(work, who, once, ClosureOut, change, 201)
