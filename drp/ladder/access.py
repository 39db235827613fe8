"""The single access policy: who may see and do what. The CLI, the web app and the flows all
ask here; nothing else decides.

- The child's IRO (or the alert's IRO) and IRO managers raise, escalate, resolve, withdraw,
  hold, resume, extend, refer and reopen.
- The person responsible at the current stage (or anyone above them on the child's
  management line, or a role the stage lets respond) responds.
- Social workers and managers see only their own teams' children; IRO managers, the assistant
  director and the director see all. Admins manage the organisation, not children's records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, false, or_, true
from sqlmodel import Session, col, select

from ..errors import InvalidTransition
from ..models import Alert, Child, Council, Person, PersonRole, Service, Team, TeamMember
from . import due
from .protocol import LINE_ROLES, Protocol, Role

SYSTEM = "system"
SEE_ALL = frozenset({Role.iro_manager, Role.assistant_director, Role.director})
IRO_SIDE_TRIGGERS = frozenset(
    {"escalate", "resolve", "withdraw", "hold", "resume", "extend", "refer", "reopen",
     "set_theme"}
)


@dataclass(frozen=True)
class Actor:
    """A person acting, with the scope their roles and posts give them."""

    id: int | None
    username: str
    name: str
    roles: frozenset[str]
    team_ids: frozenset[int] = frozenset()  # teams whose children they may see

    @property
    def is_system(self) -> bool:
        return self.username == SYSTEM

    @property
    def sees_all(self) -> bool:
        return self.is_system or bool(self.roles & SEE_ALL)

    @property
    def is_iro_manager(self) -> bool:
        return Role.iro_manager in self.roles


SYSTEM_ACTOR = Actor(id=None, username=SYSTEM, name="drp (automatic)", roles=frozenset())


def load_actor(session: Session, person: Person) -> Actor:
    assert person.id is not None
    pid = person.id
    roles = frozenset(session.exec(select(PersonRole.role).where(PersonRole.person_id == pid)))
    teams: set[int] = set()
    teams.update(session.exec(select(Team.id).where(Team.team_manager_id == pid)))  # type: ignore[arg-type]
    teams.update(session.exec(select(TeamMember.team_id).where(TeamMember.person_id == pid)))
    services = select(Service.id).where(
        or_(col(Service.head_of_service_id) == pid, col(Service.service_manager_id) == pid)
    )
    teams.update(session.exec(select(Team.id).where(col(Team.service_id).in_(services))))  # type: ignore[arg-type]
    return Actor(
        id=pid, username=person.username, name=person.name, roles=roles,
        team_ids=frozenset(t for t in teams if t is not None),
    )


@dataclass(frozen=True)
class Line:
    """Who holds each post on one child's management line."""

    child: Child
    team: Team
    service: Service
    council: Council | None
    by_role: dict[str, int | None] = field(default_factory=dict)

    @classmethod
    def of(cls, session: Session, child: Child) -> Line:
        team = session.get(Team, child.team_id)
        assert team is not None
        service = session.get(Service, team.service_id)
        assert service is not None
        return cls.build(child, team, service, session.get(Council, 1))

    @classmethod
    def build(cls, child: Child, team: Team, service: Service, council: Council | None) -> Line:
        """From rows already read (pages and runs that build many lines read them once)."""
        by_role: dict[str, int | None] = {
            Role.social_worker: child.social_worker_id,
            Role.team_manager: team.team_manager_id,
            Role.service_manager: service.service_manager_id,
            Role.head_of_service: service.head_of_service_id,
            Role.assistant_director: council.assistant_director_id if council else None,
            Role.director: council.director_id if council else None,
        }
        return cls(child=child, team=team, service=service, council=council, by_role=by_role)

    def holder(self, role: str) -> int | None:
        return self.by_role.get(role)

    def rank(self, person_id: int | None) -> int:
        """The highest post this person holds on the line (-1 when none)."""
        ranks = [i for i, r in enumerate(LINE_ROLES) if person_id and self.by_role[r] == person_id]
        return max(ranks, default=-1)


def can_see_child(actor: Actor, child: Child, alert_iro_id: int | None = None) -> bool:
    if actor.sees_all:
        return True
    return actor.id is not None and (
        child.iro_id == actor.id
        or alert_iro_id == actor.id
        or child.social_worker_id == actor.id
        or child.team_id in actor.team_ids
    )


def visible_alerts(actor: Actor) -> ColumnElement[bool]:
    """The same rule as can_see_child, as a WHERE clause over Alert joined to Child."""
    if actor.sees_all:
        return true()
    if actor.id is None:
        return false()
    return or_(
        col(Child.iro_id) == actor.id,
        col(Alert.iro_id) == actor.id,
        col(Child.social_worker_id) == actor.id,
        col(Child.team_id).in_(sorted(actor.team_ids)),
    )


def is_alert_iro(actor: Actor, alert: Alert, child: Child) -> bool:
    return actor.id is not None and Role.iro in actor.roles and actor.id in (
        alert.iro_id, child.iro_id
    )


def may_raise(actor: Actor, child: Child) -> bool:
    return actor.is_iro_manager or (
        actor.id is not None and Role.iro in actor.roles and child.iro_id == actor.id
    )


REPORT_READERS = frozenset(
    {Role.iro_manager, Role.assistant_director, Role.director, Role.head_of_service}
)


def may_see_report(roles: frozenset[str]) -> bool:
    """The dispute report (the published figures, no child's record): IRO managers and
    senior managers. Over roles alone (an Actor's `roles`, or a signed-in person's)."""
    return bool(roles & REPORT_READERS)


def may_administer(roles: frozenset[str]) -> bool:
    """The administration pages (the organisation file, the protocol): administrators."""
    return Role.admin in roles


def may_respond(actor: Actor, protocol: Protocol, stage_key: str, line: Line) -> bool:
    if actor.id is None or stage_key not in protocol.keys:
        return False
    if actor.id in responders(protocol, stage_key, line):
        return True
    needed = LINE_ROLES.index(protocol.stage(stage_key).responsible)
    return line.rank(actor.id) >= needed


def may(
    actor: Actor, trigger: str, protocol: Protocol, alert: Alert, line: Line,
    *, action_owner_id: int | None = None, action_stage: str | None = None,
) -> bool:
    """May this person fire `trigger` on this alert? (The machine asks too, as a guard.)"""
    if actor.is_system:
        return trigger in ("escalate", "remind", "resume", "set_theme")
    if not can_see_child(actor, line.child, alert.iro_id):
        return False
    iro_side = actor.is_iro_manager or is_alert_iro(actor, alert, line.child)
    if trigger in IRO_SIDE_TRIGGERS:
        return iro_side
    if trigger == "raise_alert":
        return may_raise(actor, line.child)
    if trigger == "respond":
        return may_respond(actor, protocol, alert.stage, line)
    if trigger == "action_done":
        if iro_side or (action_owner_id is not None and action_owner_id == actor.id):
            return True
        stage = action_stage if action_stage in protocol.keys else None
        return stage is not None and may_respond(actor, protocol, stage, line)
    return False


def may_own_action(person_id: int, alert: Alert, line: Line) -> bool:
    """An agreed action's owner works on the child's case (a post on the child's line, or
    the IRO), so they can see the alert and mark the action done."""
    return person_id in {p for p in (*line.by_role.values(), line.child.iro_id, alert.iro_id)
                         if p}


def who_may(trigger: str, protocol: Protocol, alert: Alert, line: Line) -> str:
    """In words, for refusals."""
    if trigger in IRO_SIDE_TRIGGERS or trigger == "raise_alert":
        return "only the child's IRO or an IRO manager"
    if trigger == "respond":
        stage = protocol.stage(alert.stage)
        return (
            f"only the {stage.responsible.value.replace('_', ' ')} responsible at"
            f" {stage.key} or a manager above them on the child's line"
        )
    if trigger == "action_done":
        return "only the action's owner, the child's IRO, an IRO manager or the line manager"
    return "nobody in your roles"


# -- who is asked to respond at a stage (the inbox, the e-mails and the refusals ask here) ----
def responsible_id(protocol: Protocol, stage_key: str, line: Line) -> int | None:
    """Who holds the post responsible at this stage for this child (None when nobody)."""
    if stage_key not in protocol.keys:
        return None
    return line.holder(protocol.stage(stage_key).responsible)


def responders(protocol: Protocol, stage_key: str | None, line: Line) -> list[int | None]:
    """The people asked to respond at a stage: the responsible post's holder, then the posts
    the stage also lets respond (`also_respond`). Managers above them may respond too
    (`may_respond`), but are not asked."""
    if stage_key is None or stage_key not in protocol.keys:
        return []
    stage = protocol.stage(stage_key)
    return [line.holder(stage.responsible), *(line.holder(r) for r in stage.also_respond)]


def awaits_response_from(actor: Actor, protocol: Protocol, alert: Alert, line: Line) -> bool:
    """Is this open alert waiting for this person's response (their inbox)?"""
    return (due.awaiting_response(protocol, alert) and actor.id is not None
            and actor.id in responders(protocol, alert.stage, line))


def require_responsible(protocol: Protocol, stage_key: str, line: Line) -> None:
    """Refuse to move an alert to a stage whose responsible post nobody holds."""
    if responsible_id(protocol, stage_key, line) is None:
        role = protocol.stage(stage_key).responsible.value.replace("_", " ")
        raise InvalidTransition(
            f"nobody holds the post of {role} for child {line.child.ref} (team"
            f" {line.team.key}, service {line.service.key}), who is responsible at"
            f" {stage_key}; name one in the organisation file and run `drp org load`"
        )
