"""The single access policy: who may see and do what. The CLI, the web app and the flows all
ask here; nothing else decides.

- The allocated IRO's own powers (s.25B(3) Children Act 1989): raising, escalating,
  resolving, withdrawing, referring to Cafcass (and holding, resuming, extending, reopening,
  the theme) are the allocated IRO's, or their recorded cover's. An IRO manager sees
  everything, may withdraw an alert raised in error and move a misfiled one, and otherwise
  acts on an alert only as the IRO's recorded cover.
- Cover (`deputies_on`): while a recorded cover period runs, the deputy receives the absent
  person's work (responsibility at a stage, the inbox, e-mails, reminders) and may do what
  they may, "as cover for" them (`acting_for`). Who records cover: `may_set_cover`; who may
  deputise for whom (the IRO's independence of the line): `may_deputise`.
- The person responsible at the current stage (or their cover, anyone above them on the
  child's management line, or a role the stage lets respond) responds; the one responsible
  (or their cover) acknowledges. A vacant team manager's post falls to the service manager,
  else the head of service.
- Social workers and managers see only their own teams' children; IRO managers, the assistant
  director and the director see all. Admins manage the organisation, not children's records.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlmodel import Session, col, select

from ..errors import InvalidTransition
from ..models import (
    Alert,
    Child,
    Council,
    PersonRole,
    Service,
    Team,
    TeamMember,
)
from . import due
from .actors import COVER_TODAY as COVER_TODAY  # re-exported: who acts is the policy's input
from .actors import SEE_ALL as SEE_ALL
from .actors import SYSTEM as SYSTEM
from .actors import SYSTEM_ACTOR as SYSTEM_ACTOR
from .actors import Actor as Actor
from .actors import actor_named as actor_named
from .actors import deputies_on as deputies_on
from .actors import load_actor as load_actor
from .line import Line as Line  # re-exported: the line is part of the policy's vocabulary
from .protocol import LINE_ROLES, Protocol, Role

# The allocated IRO's own (or their recorded cover's).
IRO_SIDE_TRIGGERS = frozenset(
    {"escalate", "resolve", "withdraw", "hold", "resume", "extend", "refer",
     "cafcass_response", "reopen", "set_theme", "move", "link"}
)
# What an IRO manager may do in their own right (the rest only as cover).
IRO_MANAGER_TRIGGERS = frozenset({"withdraw", "move", "link"})


def acts_for(actor: Actor, person_id: int | None) -> bool:
    """Is this person `person_id`, or their recorded cover today?"""
    return person_id is not None and actor.id is not None and (
        actor.id == person_id or person_id in actor.covering)


def acting_for(actor: Actor, person_id: int | None) -> str | None:
    """The username of the person this actor stands in for, when acting as their cover
    (None when acting in their own right)."""
    if person_id is None or actor.id == person_id:
        return None
    return actor.covering.get(person_id)


def _selves(actor: Actor) -> list[int]:
    return [] if actor.id is None else [actor.id, *actor.covering]


def may_see_origin(actor: Actor, event_actor: str) -> bool:
    """Where an act came from (the operating-system user, the client address) is for the
    audit: shown to the oversight roles (the IRO manager, the assistant director, the
    director) and to the person who acted, not to everyone who may read the alert."""
    return bool(actor.roles & SEE_ALL) or actor.username == event_actor


def can_see_child(actor: Actor, child: Child, alert_iro_id: int | None = None) -> bool:
    if actor.sees_all:
        return True
    selves = _selves(actor)
    return bool(selves) and (
        child.iro_id in selves
        or alert_iro_id in selves
        or child.social_worker_id in selves
        or child.team_id in actor.team_ids
    )


def visible_alerts(actor: Actor) -> ColumnElement[bool]:
    """The same rule as can_see_child, as a WHERE clause over Alert joined to Child."""
    if actor.sees_all:
        return true()
    if actor.id is None:
        return false()
    selves = _selves(actor)
    return or_(
        col(Child.iro_id).in_(selves),
        col(Alert.iro_id).in_(selves),
        col(Child.social_worker_id).in_(selves),
        col(Child.team_id).in_(sorted(actor.team_ids)),
    )


def is_alert_iro(actor: Actor, alert: Alert, child: Child) -> bool:
    """The allocated IRO (the alert's, which follows the child's), or their cover."""
    del child  # the alert's IRO is the allocated one (a transfer moves it)
    return acts_for(actor, alert.iro_id) and (
        Role.iro in actor.roles or alert.iro_id in actor.covering)


def may_correct(actor: Actor, alert: Alert, child: Child) -> bool:
    """Correcting an alert's text (drp.correction): the alert's allocated IRO (or their
    recorded cover), or an IRO manager: the people who answer for the record's accuracy.
    (Seeing the alert is checked before.)"""
    return actor.is_iro_manager or is_alert_iro(actor, alert, child)


WHO_CORRECTS = "only its IRO (or their recorded cover) or an IRO manager may"


def may_raise(actor: Actor, child: Child) -> bool:
    """Raising is the child's IRO's, or their recorded cover's."""
    return acts_for(actor, child.iro_id) and (
        Role.iro in actor.roles or child.iro_id in actor.covering)


def may_record_good_practice(actor: Actor, child: Child) -> bool:
    return may_raise(actor, child)


REPORT_READERS = frozenset(
    {Role.iro_manager, Role.assistant_director, Role.director, Role.head_of_service}
)


def may_see_report(roles: frozenset[str]) -> bool:
    """The dispute report (the published figures, no child's record): IRO managers and
    senior managers. Over roles alone (an Actor's `roles`, or a signed-in person's)."""
    return bool(roles & REPORT_READERS)


# A child's whole record, exported to answer a subject access request (drp.subject_access):
# the IRO manager, who answers for the IRO service's records. Not an administrator (admins
# manage the organisation, not children's records), nor anyone on the child's line.
CHILD_EXPORTERS = frozenset({Role.iro_manager})


def may_export_child(roles: frozenset[str]) -> bool:
    """`drp child export` (and its button): over roles alone, as the report's rule is."""
    return bool(roles & CHILD_EXPORTERS)


def may_administer(roles: frozenset[str]) -> bool:
    """The administration pages (the organisation file, the protocol): administrators."""
    return Role.admin in roles


IRO_SIDE = frozenset({Role.iro.value, Role.iro_manager.value})
LINE_SIDE = frozenset(r.value for r in LINE_ROLES)


def may_deputise(person_roles: frozenset[str], deputy_roles: frozenset[str]) -> bool:
    """Whose work may go to whom: the IRO's independence of the child's management line
    (s.25B Children Act 1989) holds under cover too. An IRO's or IRO manager's deputy is
    another IRO or IRO manager; a line manager's or social worker's deputy holds a post on
    the line, not only the IRO's side. (Anyone may cover someone with neither, an
    administrator.)"""
    for side in (IRO_SIDE, LINE_SIDE):
        if person_roles & side and not deputy_roles & side:
            return False
    return True


WHO_SETS_COVER = ("an administrator, an IRO manager (for an IRO or IRO manager) or a manager"
                  " above the person on a team's management line")


def may_set_cover(session: Session, actor: Actor, person_id: int) -> bool:
    """Who may record (or end) a cover period for a person: an administrator (the command
    line acts as one), an IRO manager for an IRO or another IRO manager, or a manager above
    the person on a team's line (a team manager for a social worker of the team, a head of
    service for the team managers of their service, the assistant director and director for
    anyone on a line below them). Nobody arranges cover in their own right otherwise."""
    if actor.is_system or Role.admin in actor.roles:
        return True
    if actor.id is None or actor.id == person_id:
        return False
    roles = set(session.exec(select(PersonRole.role).where(PersonRole.person_id == person_id)))
    if actor.is_iro_manager and roles & {Role.iro.value, Role.iro_manager.value}:
        return True
    members: dict[int, set[int | None]] = {}
    for team_id, pid in [*session.exec(select(TeamMember.team_id, TeamMember.person_id)),
                         *session.exec(select(Child.team_id, Child.social_worker_id)
                                       .where(col(Child.active)))]:
        members.setdefault(team_id, set()).add(pid)
    council = session.get(Council, 1)
    senior = ({council.assistant_director_id}, {council.director_id}) if council else (
        set(), set())
    for team, service in session.exec(select(Team, Service).join(
            Service, col(Service.id) == Team.service_id).where(col(Team.active))):
        posts = (members.get(team.id or 0, set()), {team.team_manager_id},
                 {service.service_manager_id}, {service.head_of_service_id}, *senior)

        def rank(pid: int | None, posts: tuple[set[int | None], ...] = posts) -> int:
            return max((i for i, held in enumerate(posts) if pid in held), default=-1)

        if rank(actor.id) > rank(person_id) >= 0:
            return True
    return False


def may_respond(actor: Actor, protocol: Protocol, stage_key: str, line: Line) -> bool:
    if actor.id is None or stage_key not in protocol.keys:
        return False
    asked = responders(protocol, stage_key, line)
    if any(acts_for(actor, pid) for pid in asked):
        return True
    needed = LINE_ROLES.index(protocol.stage(stage_key).responsible)
    return max(line.rank(p) for p in _selves(actor)) >= needed


def may_acknowledge(actor: Actor, protocol: Protocol, stage_key: str, line: Line) -> bool:
    """The person responsible at the stage (the post's holder), or their cover."""
    if stage_key not in protocol.keys:
        return False
    return acts_for(actor, line.holder(protocol.stage(stage_key).responsible))


def may(
    actor: Actor, trigger: str, protocol: Protocol, alert: Alert, line: Line,
    *, action_owner_id: int | None = None, action_stage: str | None = None,
) -> bool:
    """May this person fire `trigger` on this alert? (The machine asks too, as a guard.)"""
    if actor.is_system:
        return trigger in ("escalate", "remind", "resume", "set_theme")
    if not can_see_child(actor, line.child, alert.iro_id):
        return False
    allocated = is_alert_iro(actor, alert, line.child)
    iro_side = allocated or actor.is_iro_manager
    if trigger in IRO_SIDE_TRIGGERS:
        return allocated or (actor.is_iro_manager and trigger in IRO_MANAGER_TRIGGERS)
    if trigger == "raise_alert":
        return may_raise(actor, line.child)
    if trigger == "respond":
        return may_respond(actor, protocol, alert.stage, line)
    if trigger == "acknowledge":
        return may_acknowledge(actor, protocol, alert.stage, line)
    if trigger == "action_done":
        if iro_side or acts_for(actor, action_owner_id):
            return True
        stage = action_stage if action_stage in protocol.keys else None
        return stage is not None and may_respond(actor, protocol, stage, line)
    return False


def acting_as(actor: Actor, trigger: str, protocol: Protocol, alert: Alert, line: Line
              ) -> str | None:
    """Whom the actor stands in for when firing `trigger` (recorded on the event), or None
    when they act in their own right."""
    if actor.is_system or actor.id is None or not actor.covering:
        return None
    if trigger in IRO_SIDE_TRIGGERS or trigger == "raise_alert":
        if actor.id == alert.iro_id:
            return None
        if alert.iro_id in actor.covering:
            return acting_for(actor, alert.iro_id)
        if trigger in IRO_MANAGER_TRIGGERS and actor.is_iro_manager:
            return actor.borrowed.get(Role.iro_manager)  # None: an IRO manager themselves
        return None
    if trigger in ("respond", "acknowledge") and alert.stage in protocol.keys:
        stage = protocol.stage(alert.stage)
        holder = line.holder(stage.responsible)
        if trigger == "acknowledge":
            return acting_for(actor, holder)
        holders = [holder, *(line.holder(r) for r in stage.also_respond)]
        if actor.id in holders or line.rank(actor.id) >= LINE_ROLES.index(stage.responsible):
            return None  # in their own right
        covered = next((u for p in holders if (u := acting_for(actor, p))), None)
        if covered is not None:
            return covered
        # Through the rank of someone they cover: above the stage on the child's line.
        return next((u for p, u in actor.covering.items()
                     if line.rank(p) >= LINE_ROLES.index(stage.responsible)), None)
    return None


def may_own_action(person_id: int, alert: Alert, line: Line) -> bool:
    """An agreed action's owner works on the child's case (a post on the child's line, or
    the IRO), so they can see the alert and mark the action done."""
    return person_id in {p for p in (*line.by_role.values(), line.child.iro_id, alert.iro_id)
                         if p}


def who_may(trigger: str, protocol: Protocol, alert: Alert, line: Line) -> str:
    """In words, for refusals."""
    if trigger in IRO_MANAGER_TRIGGERS:
        return "only the allocated IRO, their recorded cover or an IRO manager"
    if trigger in IRO_SIDE_TRIGGERS or trigger == "raise_alert":
        return ("only the allocated IRO or their recorded cover (an IRO manager acts as"
                " cover once it is recorded: drp cover set)")
    if trigger == "acknowledge" and alert.stage in protocol.keys:
        role = protocol.stage(alert.stage).responsible.value.replace("_", " ")
        return f"only the {role} responsible at {alert.stage}, or their recorded cover,"
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
    return line.acting(protocol.stage(stage_key).responsible)


def responders(protocol: Protocol, stage_key: str | None, line: Line) -> list[int | None]:
    """The people asked to respond at a stage: whoever does the responsible post's work
    today (its holder or their cover), then the posts the stage also lets respond
    (`also_respond`). Managers above them may respond too (`may_respond`), but are not
    asked."""
    if stage_key is None or stage_key not in protocol.keys:
        return []
    stage = protocol.stage(stage_key)
    return [line.acting(stage.responsible), *(line.acting(r) for r in stage.also_respond)]


def iro_of(alert: Alert, line: Line) -> int | None:
    """Who gets the allocated IRO's work on this alert today (the IRO, or their cover)."""
    return line.covered(alert.iro_id)


def asked(protocol: Protocol, alert: Alert, line: Line) -> tuple[frozenset[int], int | None]:
    """Whom this alert asks now: the people asked to respond (`responders`, while its stage
    awaits a response: `due.awaiting_response`) and the one asked to acknowledge (who does
    the responsible post's work, until someone acknowledges); nobody otherwise. The inbox
    (`awaits_response_from`) and each e-mail's "Respond by" and "Acknowledge" (drp.notify)
    ask here; a message to many readers asks once."""
    if not due.awaiting_response(protocol, alert):
        return frozenset(), None
    respond = frozenset(p for p in responders(protocol, alert.stage, line) if p is not None)
    acknowledge = (responsible_id(protocol, alert.stage, line)
                   if alert.acknowledged_at is None else None)
    return respond, acknowledge


def awaits_response_from(actor: Actor, protocol: Protocol, alert: Alert, line: Line) -> bool:
    """Is this open alert waiting for this person's response (their inbox)?"""
    return actor.id is not None and actor.id in asked(protocol, alert, line)[0]



def require_responsible(protocol: Protocol, stage_key: str, line: Line) -> None:
    """Refuse to move an alert to a stage whose responsible post nobody holds."""
    if responsible_id(protocol, stage_key, line) is None:
        role = protocol.stage(stage_key).responsible.value.replace("_", " ")
        raise InvalidTransition(
            f"nobody holds the post of {role} for child {line.child.ref} (team"
            f" {line.team.key}, service {line.service.key}), who is responsible at"
            f" {stage_key}; name one in the organisation file and run `drp org load`"
        )


# -- what waits for the allocated IRO (their "Awaiting my decision" list and its count) --------
def awaits_decision_from(actor: Actor, alert: Alert, line: Line, today: date,
                         hold_horizon: date) -> str | None:
    """Why this alert waits for this person as its allocated IRO (or their recorded cover),
    or None: "response" (the stage has answered: accept and resolve, or escalate), "overdue"
    (`due.alert_overdue`), "hold_ending" (a hold ending by `hold_horizon`)."""
    if alert.status != "open" or not is_alert_iro(actor, alert, line.child):
        return None
    if alert.on_hold:
        ending = alert.hold_until is not None and alert.hold_until <= hold_horizon
        return "hold_ending" if ending else None
    if alert.stage_responded_at is not None:
        return "response"
    return "overdue" if due.alert_overdue(alert, today) else None


def decision_candidates(actor: Actor, today: date, hold_horizon: date) -> ColumnElement[bool]:
    """A WHERE clause over Alert holding every alert `awaits_decision_from` may accept
    (a superset: the rule decides)."""
    selves = _selves(actor)
    if not selves:
        return false()
    return and_(
        col(Alert.status) == "open", col(Alert.iro_id).in_(selves),
        or_(col(Alert.stage_responded_at).is_not(None),
            and_(col(Alert.on_hold).is_(True), col(Alert.hold_until) <= hold_horizon),
            col(Alert.stage_due) < today, col(Alert.resolution_due) < today))
