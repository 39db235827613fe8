"""Casework beside the ladder: good-practice records, moving a misfiled alert to the right
child, linking related alerts. (Acknowledgement and the Cafcass referral are in commands.py.)"""

from __future__ import annotations

from sqlmodel import select

from ..errors import BadValue, InvalidTransition, NotFound, NotPermitted
from ..ladder import access
from ..ladder.protocol import GOOD_PRACTICE
from ..models import Alert, AlertLink, Child, new_row
from . import inputs
from .inputs import DETAIL_MAX, SUMMARY_MAX, TEXT_MAX
from .unit import UnitOfWork, known_id, reports_conflicts

# What only a concern takes (good practice has no ladder, no clock, no outcome sought).
CONCERN_ONLY = {"stage": "stage", "due": "informal due date", "impact": "impact",
                "outcome_wanted": "outcome wanted"}


class Casework(UnitOfWork):
    def record_good_practice(self, username: str, child_ref: str, summary: str, *,
                             detail: str | None = None, theme: str | None = None,
                             stage: str | None = None, due: object = None,
                             impact: str | None = None, outcome_wanted: str | None = None,
                             ) -> Alert:
        """Good practice on a child's case (what, and who in the team): a record with no
        ladder and no clock, closed once recorded; the team manager and head of service are
        told. The child's IRO's (or their recorded cover's). `stage`, `due`, `impact` and
        `outcome_wanted` are a concern's: given (by a shell's form or options), refused."""
        actor = self.actor(username)
        child = self._visible_child(actor, child_ref, username)
        if not access.may_record_good_practice(actor, child):
            raise NotPermitted(
                f"{username} may not record good practice for child {child.ref}: only the"
                " child's IRO or their recorded cover may")
        values = {"stage": stage, "due": due, "impact": impact,
                  "outcome_wanted": outcome_wanted}
        given = [name for name in CONCERN_ONLY if values[name] not in (None, "")]
        if given:
            raise BadValue("good practice has no ladder, no clock and no outcome sought, so"
                           f" it takes no {CONCERN_ONLY[given[0]]}: leave it out (put more in"
                           " the detail)", field=given[0])
        text = inputs.text(summary, "the summary", required=True, limit=SUMMARY_MAX)
        more = inputs.text(detail, "the detail", required=False, limit=DETAIL_MAX)
        if theme is not None and self.taxonomy is not None and theme not in self.taxonomy.keys:
            raise BadValue(f"there is no theme {theme!r}; choose one of"
                           f" {', '.join(self.taxonomy.keys)}", field="theme")
        line = self.line_of(child)
        alert = new_row(Alert,
            child_id=known_id(child.id), iro_id=child.iro_id, kind="good_practice",
            status="closed", stage=GOOD_PRACTICE, summary=text or "", detail=more,
            theme=theme, theme_confirmed=theme is not None,
            raised_at=self.now, stage_entered_at=self.now, closed_at=self.now,
        )
        self._new_alert(alert, actor, line)
        event = self._event(alert, actor, "good_practice", first=True, to_stage=GOOD_PRACTICE,
                            comment=text, data={"theme": theme})
        self._notice(alert, line, event)
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def move(self, alert_id: int, username: str, child_ref: str, reason: str) -> Alert:
        """A misfiled alert (raised on the wrong child) to the right one: the allocated IRO's
        or an IRO manager's. The alert takes the new child's IRO and line; the wrong child's
        record no longer shows it."""
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        text = inputs.text(reason, "the reason", required=True, limit=TEXT_MAX)
        self._check(alert, actor, line, "move", None)  # the right to move before the target
        target = self._visible_child(actor, child_ref, username)
        if target.id == alert.child_id:
            raise BadValue(f"alert {alert.id} is already on child {target.ref}; give the"
                           " child it should be on", field="child")
        # To a child whose alerts the actor may raise (the IRO of both, or their cover), or
        # for an IRO manager any child (access.py's rule for moving is theirs, on the alert).
        if not (actor.is_iro_manager or access.may_raise(actor, target)):
            raise NotPermitted(
                f"{username} may not move alert {alert.id} to child {target.ref}: only an"
                " IRO manager, or the IRO of both children, may")
        new_line = self.line_of(target)
        if alert.status == "open":
            access.require_responsible(self.protocol, alert.stage, new_line)
        self._fire(alert, actor, line, "move")
        old_ref = line.child.ref
        before = access.responsible_id(self.protocol, alert.stage, line)
        alert.child_id, alert.iro_id = known_id(target.id), target.iro_id
        if before != access.responsible_id(self.protocol, alert.stage, new_line):
            # Someone else is responsible now: their acknowledgement is still to come.
            alert.acknowledged_by_id, alert.acknowledged_at = None, None
        self._lines[known_id(alert.id)] = new_line
        event = self._event(alert, actor, "moved", from_stage=alert.stage, to_stage=alert.stage,
                            comment=text, data={"from": old_ref, "to": target.ref},
                            line=new_line)
        self._notice(alert, new_line, event, from_child=old_ref)
        self._commit_point(alert)
        return alert

    @reports_conflicts
    def link(self, alert_id: int, other_id: int, username: str) -> Alert:
        """Link two related alerts (siblings, the same concern), each way, with an event on
        both. Both must be ones the person may see; the first, one they may link."""
        actor = self.actor(username)
        alert, line = self._load(alert_id, actor)
        if other_id == alert_id:
            raise BadValue(f"alert {alert_id} cannot be linked to itself; give another alert's"
                           " number")
        other, other_line = self._load(other_id, actor)
        self._fire(alert, actor, line, "link")
        known = self.s.exec(select(AlertLink).where(AlertLink.alert_id == alert.id,
                                                    AlertLink.other_id == other.id)).first()
        if known is not None:
            raise InvalidTransition(
                f"alerts {alert.id} and {other.id} are already linked (by {known.created_by});"
                " nothing to do")
        self._cover_for[known_id(other.id)] = access.acting_as(actor, "link", self.protocol,
                                                               other, other_line)
        self._not_before_last_event(other)
        for one, two in ((alert, other), (other, alert)):
            self.s.add(AlertLink(alert_id=known_id(one.id), other_id=known_id(two.id),
                                 created_at=self.now, created_by=actor.username))
            self._event(one, actor, "linked", from_stage=one.stage, to_stage=one.stage,
                        comment=f"related to alert {two.id}", data={"other": two.id})
        self._commit_point(alert)
        return alert

    def _visible_child(self, actor: access.Actor, child_ref: str, username: str) -> Child:
        child = self.s.exec(select(Child).where(Child.ref == child_ref)).first()
        if child is None or not child.active or not access.can_see_child(actor, child):
            self.refuse(actor, f"child {child_ref[:40]!r}")
            raise NotFound(
                f"there is no child {child_ref!r} that {username} can see; check the reference")
        return child
