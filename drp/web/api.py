"""The JSON API under /api: the same operations and the same access rules as the pages and
the command line. Authenticate with `Authorization: Bearer <token>` (drp user token), or a
signed-in session plus the X-CSRF-Token header for changes."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from ..alerts import ActionIn
from ..schemas import AlertDetail, AlertView


class RaiseIn(BaseModel):
    child: str = Field(max_length=40)
    summary: str = Field(max_length=500)
    detail: str | None = Field(default=None, max_length=10000)
    impact: str | None = Field(default=None, max_length=5000)
    outcome_wanted: str | None = Field(default=None, max_length=5000)
    theme: str | None = Field(default=None, max_length=64)
    stage: str | None = Field(default=None, max_length=32)


class ActionInModel(BaseModel):
    text: str = Field(max_length=2000)
    due: date
    owner: str | None = Field(default=None, max_length=80)


class RespondIn(BaseModel):
    message: str = Field(max_length=10000)
    actions: list[ActionInModel] = Field(default_factory=list, max_length=20)


class EscalateIn(BaseModel):
    reason: str = Field(max_length=5000)
    to: str | None = Field(default=None, max_length=32)


class OutcomeIn(BaseModel):
    outcome: str = Field(max_length=5000)


class ReasonIn(BaseModel):
    reason: str = Field(max_length=5000)


class HoldIn(BaseModel):
    reason: str = Field(max_length=5000)
    until: date | None = None


class ExtendIn(BaseModel):
    until: date
    reason: str = Field(max_length=5000)


class ReferIn(BaseModel):
    reason: str = Field(max_length=5000)
    legal_advice_taken: bool = Field(
        description="the IRO confirms the IRO manager was consulted and independent legal"
                    " advice taken")


class ThemeIn(BaseModel):
    theme: str = Field(max_length=64)


class Me(BaseModel):
    username: str
    name: str
    roles: list[str]


def _caller(request: Request, changing: bool) -> str:
    st = request.app.state
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        person = st.auth.api_person(header[7:].strip())
        if person is None:
            from .app import SignInNeeded

            raise SignInNeeded
        return str(person.username)
    user = st.need(request)
    if changing:
        st.check_csrf(request, user, {"csrf_token": request.headers.get("x-csrf-token")})
    return str(user.person.username)


# Dependencies, so who is asking is settled before the body is validated: a request without
# credentials is told 401, whatever it sent.
def reader(request: Request) -> str:
    return _caller(request, False)


def writer(request: Request) -> str:
    return _caller(request, True)


Reader = Annotated[str, Depends(reader)]
Writer = Annotated[str, Depends(writer)]


def register(app: FastAPI) -> None:
    st = app.state
    router = APIRouter(prefix="/api", tags=["alerts"])

    def detail(aid: int, who: str) -> dict[str, Any]:
        with st.service() as svc:
            return svc.show(aid, who).public()

    @router.get("/me", response_model=Me)
    def me(who: Reader) -> Me:
        from sqlmodel import select

        from ..models import Person, PersonRole

        with st.service() as svc:
            person = svc.s.exec(select(Person).where(Person.username == who)).one()
            roles = sorted(svc.s.exec(select(PersonRole.role).where(
                PersonRole.person_id == person.id)))
        return Me(username=who, name=person.name, roles=roles)

    @router.get("/alerts", response_model=list[AlertView])
    def list_alerts(who: Reader, status: str | None = None, team: str | None = None,
                    stage: str | None = None, theme: str | None = None) -> list[AlertView]:
        with st.service() as svc:
            return list(svc.list_alerts(who, status, team=team, stage=stage, theme=theme))

    @router.get("/alerts/{alert_id}", response_model=AlertDetail)
    def show(who: Reader, alert_id: int) -> dict[str, Any]:
        return detail(alert_id, who)

    @router.post("/alerts", response_model=AlertDetail, status_code=201)
    def raise_alert(who: Writer, body: RaiseIn) -> dict[str, Any]:
        with st.service() as svc:
            alert = svc.raise_alert(who, body.child, body.summary, detail=body.detail,
                                    impact=body.impact, outcome_wanted=body.outcome_wanted,
                                    theme=body.theme, stage=body.stage)
            aid = int(alert.id or 0)
        return detail(aid, who)

    @router.post("/alerts/{alert_id}/respond", response_model=AlertDetail)
    def respond(who: Writer, alert_id: int, body: RespondIn) -> dict[str, Any]:
        with st.service() as svc:
            svc.respond(alert_id, who, body.message,
                        [ActionIn(a.text, a.due, a.owner) for a in body.actions])
        return detail(alert_id, who)

    @router.post("/alerts/{alert_id}/escalate", response_model=AlertDetail)
    def escalate(who: Writer, alert_id: int, body: EscalateIn) -> dict[str, Any]:
        with st.service() as svc:
            svc.escalate(alert_id, who, body.reason, to=body.to)
        return detail(alert_id, who)

    @router.post("/alerts/{alert_id}/resolve", response_model=AlertDetail)
    def resolve(who: Writer, alert_id: int, body: OutcomeIn) -> dict[str, Any]:
        with st.service() as svc:
            svc.resolve(alert_id, who, body.outcome)
        return detail(alert_id, who)

    @router.post("/alerts/{alert_id}/withdraw", response_model=AlertDetail)
    def withdraw(who: Writer, alert_id: int, body: ReasonIn) -> dict[str, Any]:
        with st.service() as svc:
            svc.withdraw(alert_id, who, body.reason)
        return detail(alert_id, who)

    @router.post("/alerts/{alert_id}/hold", response_model=AlertDetail)
    def hold(who: Writer, alert_id: int, body: HoldIn) -> dict[str, Any]:
        with st.service() as svc:
            svc.hold(alert_id, who, body.reason, body.until)
        return detail(alert_id, who)

    @router.post("/alerts/{alert_id}/resume", response_model=AlertDetail)
    def resume(who: Writer, alert_id: int) -> dict[str, Any]:
        with st.service() as svc:
            svc.resume(alert_id, who)
        return detail(alert_id, who)

    @router.post("/alerts/{alert_id}/extend", response_model=AlertDetail)
    def extend(who: Writer, alert_id: int, body: ExtendIn) -> dict[str, Any]:
        with st.service() as svc:
            svc.extend(alert_id, who, body.until, body.reason)
        return detail(alert_id, who)

    @router.post("/alerts/{alert_id}/refer", response_model=AlertDetail)
    def refer(who: Writer, alert_id: int, body: ReferIn) -> dict[str, Any]:
        from ..errors import BadValue

        if not body.legal_advice_taken:
            raise BadValue("a referral to Cafcass needs legal_advice_taken: true (the IRO"
                           " manager consulted and independent legal advice taken)")
        with st.service() as svc:
            svc.refer(alert_id, who, body.reason)
        return detail(alert_id, who)

    @router.post("/alerts/{alert_id}/reopen", response_model=AlertDetail)
    def reopen(who: Writer, alert_id: int, body: ReasonIn) -> dict[str, Any]:
        with st.service() as svc:
            svc.reopen(alert_id, who, body.reason)
        return detail(alert_id, who)

    @router.post("/alerts/{alert_id}/theme", response_model=AlertDetail)
    def theme(who: Writer, alert_id: int, body: ThemeIn) -> dict[str, Any]:
        with st.service() as svc:
            svc.set_theme(alert_id, who, body.theme)
        return detail(alert_id, who)

    @router.post("/alerts/{alert_id}/actions/{action_no}/done", response_model=AlertDetail)
    def action_done(who: Writer, alert_id: int, action_no: int) -> dict[str, Any]:
        with st.service() as svc:
            svc.action_done(alert_id, action_no, who)
        return detail(alert_id, who)

    app.include_router(router)
