"""A child's management line: who holds each post (social worker up to the director), who
fills a vacancy, and who covers an absent holder today. The access policy
(drp/ladder/access.py, which re-exports `Line`) decides with it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlmodel import Session

from ..models import Child, Council, Service, Team
from .protocol import LINE_ROLES, Role


@dataclass(frozen=True)
class Line:
    """Who holds each post on one child's management line."""

    child: Child
    team: Team
    service: Service
    council: Council | None
    by_role: dict[str, int | None] = field(default_factory=dict)
    deputies: Mapping[int, int] = field(default_factory=dict)  # today's cover: absent -> deputy
    vacant: tuple[str, ...] = ()  # posts nobody holds, filled from above (see `build`)

    @classmethod
    def of(cls, session: Session, child: Child, deputies: Mapping[int, int] | None = None
           ) -> Line:
        team = session.get(Team, child.team_id)
        assert team is not None
        service = session.get(Service, team.service_id)
        assert service is not None
        return cls.build(child, team, service, session.get(Council, 1), deputies)

    @classmethod
    def build(cls, child: Child, team: Team, service: Service, council: Council | None,
              deputies: Mapping[int, int] | None = None) -> Line:
        """From rows already read (pages and runs that build many lines read them once). A
        team without a team manager (a vacancy) has its stage fall to the service manager,
        else the head of service."""
        vacant: tuple[str, ...] = ()
        team_manager = team.team_manager_id
        if team_manager is None:
            vacant = (Role.team_manager.value,)
            team_manager = service.service_manager_id or service.head_of_service_id
        by_role: dict[str, int | None] = {
            Role.social_worker: child.social_worker_id,
            Role.team_manager: team_manager,
            Role.service_manager: service.service_manager_id,
            Role.head_of_service: service.head_of_service_id,
            Role.assistant_director: council.assistant_director_id if council else None,
            Role.director: council.director_id if council else None,
        }
        return cls(child=child, team=team, service=service, council=council, by_role=by_role,
                   deputies=deputies or {}, vacant=vacant)

    def holder(self, role: str) -> int | None:
        """Who holds the post (its substantive holder, or who fills a vacancy)."""
        return self.by_role.get(role)

    def acting(self, role: str) -> int | None:
        """Who does the post's work today: its holder, or their recorded cover."""
        return self.covered(self.by_role.get(role))

    def covered(self, person_id: int | None) -> int | None:
        """`person_id`, or their deputy while a cover period runs."""
        if person_id is None:
            return None
        return self.deputies.get(person_id, person_id)

    def people(self, *also: int | None) -> list[int | None]:
        """The ids of the people on the line (and `also`), with whoever covers each today:
        those a page or an e-mail about the child's alert may name."""
        posts = [*also, *self.by_role.values()]
        return [*posts, *(self.covered(p) for p in posts)]

    def rank(self, person_id: int | None) -> int:
        """The highest post this person holds on the line (-1 when none)."""
        ranks = [i for i, r in enumerate(LINE_ROLES) if person_id and self.by_role[r] == person_id]
        return max(ranks, default=-1)
