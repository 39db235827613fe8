"""SQLModel tables. States are short strings (Alembic cannot see Enum changes); instants are
stored in UTC, dates as dates. What the CLI and API print lives in schemas.py."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, TypeVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    event,
    text,
)
from sqlmodel import Field, Session, SQLModel

from notifications.models import OutboxMessage as OutboxMessage  # its home is the outbox's
from notifications.models import UTCDateTime


def _instant(nullable: bool = False, **kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, **kw)


# --- organisation ------------------------------------------------------------------------


class Council(SQLModel, table=True):
    """The one organisation this database serves (row id 1): its senior managers."""

    __tablename__ = "council"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    assistant_director_id: int | None = Field(default=None, foreign_key="person.id")
    director_id: int | None = Field(default=None, foreign_key="person.id")
    # The rules (drp.due_index.basis: protocol and calendar) the due index's days were worked
    # out under; another value makes the next timescale run look at every alert again.
    attention_basis: str | None = Field(default=None, max_length=64)


class Person(SQLModel, table=True):
    __tablename__ = "person"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=80, unique=True, index=True)
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=254)
    active: bool = True
    password_hash: str | None = Field(default=None, max_length=255)
    # Sessions and API tokens carry the epoch they were issued in and work only while it is
    # the person's: a new password or leaving the organisation moves it on (_leaving_ends_
    # credentials below), so someone removed and added back gets nothing old back.
    credential_epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class OrgVersion(SQLModel, table=True):
    """One row: a token that every write to the people, their roles, teams, cover and the
    line's posts changes (database triggers, migration 0018, so no writer can miss it). A
    process keeps what it read of the organisation under the token it read with it
    (drp.orgtoken) and uses it while the token stands."""

    __tablename__ = "org_version"
    id: int = Field(default=1, primary_key=True)
    token: int = Field(sa_type=BigInteger)


class PersonRole(SQLModel, table=True):
    __tablename__ = "person_role"
    person_id: int = Field(foreign_key="person.id", primary_key=True)
    role: str = Field(max_length=40, primary_key=True)


class Service(SQLModel, table=True):
    __tablename__ = "service"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=80, unique=True, index=True)
    name: str = Field(max_length=200)
    head_of_service_id: int | None = Field(default=None, foreign_key="person.id")
    service_manager_id: int | None = Field(default=None, foreign_key="person.id")
    active: bool = True


class Team(SQLModel, table=True):
    __tablename__ = "team"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=80, unique=True, index=True)
    name: str = Field(max_length=200)
    service_id: int = Field(foreign_key="service.id", index=True)
    team_manager_id: int | None = Field(default=None, foreign_key="person.id")
    active: bool = True


class TeamMember(SQLModel, table=True):
    """Social workers (and others) who belong to a team besides its manager."""

    __tablename__ = "team_member"
    team_id: int = Field(foreign_key="team.id", primary_key=True)
    person_id: int = Field(foreign_key="person.id", primary_key=True)


class Child(SQLModel, table=True):
    """A child in care, by reference only: never a name."""

    __tablename__ = "child"
    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(max_length=40, unique=True, index=True)
    # The child's record id in the council's case-management system, when the organisation
    # file gives it: case notes are keyed by it (drp.casenotes), else by the reference.
    record_id: str | None = Field(default=None, max_length=40)
    team_id: int = Field(foreign_key="team.id", index=True)
    iro_id: int = Field(foreign_key="person.id", index=True)
    social_worker_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    active: bool = True
    # The child's date of birth, when the organisation file gives it: alert records are kept
    # until a birthday (drp.retention), not a number of years after closure.
    dob: date | None = None


# --- alerts ------------------------------------------------------------------------------

_version_col = Column("version", Integer, nullable=False)


class Alert(SQLModel, table=True):
    """A case alert (dispute). `status` and `stage` are plain columns the machine drives."""

    __tablename__ = "alert"
    # The timescale run's due queries read these ranges, so a run grows with the due set, not
    # with the table (closed alerts keep their old dates).
    __table_args__ = (
        Index("ix_alert_open_stage_due", "status", "on_hold", "stage_due"),
        # Only held alerts, by the day their hold ends (SQLite's planner cannot tell from its
        # statistics that hold_until is NULL for every other alert).
        Index("ix_alert_held_until", "hold_until", sqlite_where=text("on_hold = 1"),
              postgresql_where=text("on_hold")),
    )
    # Optimistic concurrency: every UPDATE checks the version it read.
    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _version_col}

    id: int | None = Field(default=None, primary_key=True)
    child_id: int = Field(foreign_key="child.id", index=True)
    # The allocated IRO: the child's, followed on a transfer.
    iro_id: int = Field(foreign_key="person.id", index=True)
    # "concern" climbs the ladder; "good_practice" is a record with no ladder and no clock.
    kind: str = Field(default="concern", max_length=16)
    # (status and stage_due are indexed together, with on_hold: see __table_args__)
    status: str = Field(default="open", max_length=16)
    stage: str = Field(max_length=32, index=True)
    summary: str = Field(max_length=500)
    detail: str | None = Field(default=None, max_length=10000)
    impact: str | None = Field(default=None, max_length=5000)
    outcome_wanted: str | None = Field(default=None, max_length=5000)
    outcome: str | None = Field(default=None, max_length=5000)
    theme: str | None = Field(default=None, max_length=64, index=True)
    theme_confirmed: bool = False  # chosen or confirmed by the IRO, not only suggested
    theme_suggested: str | None = Field(default=None, max_length=64)
    theme_confidence: float | None = None
    raised_at: datetime = _instant()
    stage_entered_at: datetime = _instant()
    stage_due: date | None = None
    stage_responded_at: datetime | None = _instant(nullable=True, default=None)
    # The formal clock (IRO Handbook 6.2): set when the alert first enters a formal stage,
    # None while it has only been informal.
    formal_since: date | None = None
    resolution_due: date | None = Field(default=None, index=True)
    # The current stage's acknowledgement by the person responsible (reset on each stage).
    acknowledged_by_id: int | None = Field(default=None, foreign_key="person.id")
    acknowledged_at: datetime | None = _instant(nullable=True, default=None)
    ack_reminded_for: date | None = None  # the stage due date an acknowledgement reminder went for
    on_hold: bool = False
    held_since: date | None = None
    hold_until: date | None = None
    closed_at: datetime | None = _instant(nullable=True, default=None)
    # The stage due date a reminder / an overdue notice was last sent for (the flows' guard
    # against sending twice; a new due date makes them due again).
    reminded_for: date | None = None
    overdue_notified_for: date | None = None
    # The due index: the first day the timescale run has something to do for this alert or
    # its agreed actions (drp.ladder.attention), None when nothing will fall due; kept by
    # every writer (drp.due_index), so a run reads only alerts whose day has come.
    attention_on: date | None = Field(default=None, index=True)
    last_seq: int = 0
    version: int = Field(default=1, sa_column=_version_col)


class Action(SQLModel, table=True):
    """An agreed (remedial) action: what will be done, by whom, by when."""

    __tablename__ = "action"
    __table_args__ = (UniqueConstraint("alert_id", "no"),
                      Index("ix_action_not_done_due", "done_at", "overdue_notified_at", "due"))
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    no: int
    text: str = Field(max_length=2000)
    owner_id: int = Field(foreign_key="person.id")
    due: date
    stage: str = Field(max_length=32)
    agreed_at: datetime = _instant()
    done_at: datetime | None = _instant(nullable=True, default=None)
    done_by_id: int | None = Field(default=None, foreign_key="person.id")
    overdue_notified_at: datetime | None = _instant(nullable=True, default=None)
    # Its owner reminded before its due date (drp.ladder.due.action_reminder_due): once.
    reminded_at: datetime | None = _instant(nullable=True, default=None)


class Event(SQLModel, table=True):
    """The append-only event log of an alert. The database refuses UPDATE and DELETE."""

    __tablename__ = "event"
    # (alert_id, seq) is unique, and its index serves lookups by alert_id too.
    __table_args__ = (UniqueConstraint("alert_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id")
    seq: int
    at: datetime = _instant()
    actor: str = Field(max_length=80)
    kind: str = Field(max_length=32, index=True)
    from_stage: str | None = Field(default=None, max_length=32)
    to_stage: str | None = Field(default=None, max_length=32)
    comment: str | None = Field(default=None, max_length=10000)
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The child's team (key) and IRO (username) when the event happened, so figures by team
    # and by IRO are not rewritten by a later transfer (NULL on events before drp 0.7).
    team: str | None = Field(default=None, max_length=80)
    iro: str | None = Field(default=None, max_length=80)
    # Who the actor stood in for, when they acted as recorded cover.
    as_cover_for: str | None = Field(default=None, max_length=80)
    # Where the act came from (drp.audit.Origin): cli, web, api or flow; the operating-system
    # user of a command line, the client address of a web or API request (NULL before 0009).
    channel: str | None = Field(default=None, max_length=8)
    os_user: str | None = Field(default=None, max_length=80)
    client: str | None = Field(default=None, max_length=64)


class Referral(SQLModel, table=True):
    """A referral to Cafcass: concurrent with the local process, one per alert."""

    __tablename__ = "referral"
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", unique=True)
    referred_on: date
    referred_by_id: int = Field(foreign_key="person.id")
    reason: str = Field(max_length=5000)
    legal_advice: str = Field(max_length=1000)
    advised_on: date | None = None
    response: str | None = Field(default=None, max_length=16)
    response_note: str | None = Field(default=None, max_length=5000)
    responded_on: date | None = None


class AlertLink(SQLModel, table=True):
    """Related alerts (siblings, the same concern): stored once each way."""

    __tablename__ = "alert_link"
    alert_id: int = Field(foreign_key="alert.id", primary_key=True)
    other_id: int = Field(foreign_key="alert.id", primary_key=True)
    created_at: datetime = _instant()
    created_by: str = Field(max_length=80)


class Cover(SQLModel, table=True):
    """A recorded cover period: while it runs, the deputy receives the absent person's work
    and may act as cover for them."""

    __tablename__ = "cover"
    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    deputy_id: int = Field(foreign_key="person.id", index=True)
    starts: date
    ends: date
    reason: str | None = Field(default=None, max_length=500)
    source: str = Field(default="command", max_length=16)  # "command" or "file"
    created_by: str = Field(max_length=80)
    created_at: datetime = _instant()
    ended_at: datetime | None = _instant(nullable=True, default=None)


class Closure(SQLModel, table=True):
    """A council closure day or short-notice bank holiday: not a working day."""

    __tablename__ = "closure"
    day: date = Field(primary_key=True)
    reason: str = Field(max_length=500)
    created_by: str = Field(max_length=80)
    created_at: datetime = _instant()


class DigestRun(SQLModel, table=True):
    """A fortnight's digest has run, whether or not anyone had anything to receive (with empty
    notes off, nobody may): the scheduled run sends each fortnight's once (drp/digest.py)."""

    __tablename__ = "digest_run"
    fortnight: date = Field(primary_key=True)
    ran_at: datetime = _instant()


class AccessLog(SQLModel, table=True):
    """Who looked at which record, when (children's data: every view is audited)."""

    __tablename__ = "access_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _instant()
    actor: str = Field(max_length=80)
    action: str = Field(max_length=32)
    alert_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("alert.id"), nullable=True, index=True)
    )
    detail: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    # As on Event: the channel, and the operating-system user or client address.
    channel: str | None = Field(default=None, max_length=8)
    os_user: str | None = Field(default=None, max_length=80)
    client: str | None = Field(default=None, max_length=64)



class WebSession(SQLModel, table=True):
    """A signed-in browser. Server-side, so signing out (or an administrator) revokes it."""

    __tablename__ = "web_session"
    id: str = Field(primary_key=True, max_length=64)  # sha256 of the token in the cookie
    person_id: int = Field(foreign_key="person.id", index=True)
    csrf: str = Field(max_length=64)
    created_at: datetime = _instant()
    last_seen_at: datetime = _instant()
    revoked_at: datetime | None = _instant(nullable=True, default=None)
    epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # the person's


class LoginAttempt(SQLModel, table=True):
    """Sign-in attempts, recorded before the password is checked, to slow down and lock out
    password guessing by username and client address (drp.web.auth)."""

    __tablename__ = "login_attempt"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=80, index=True)
    client: str = Field(default="", max_length=64, index=True,
                        sa_column_kwargs={"server_default": ""})
    at: datetime = _instant(index=True)
    ok: bool = False
    # Counts towards the throttle: a failure, or an attempt still being checked. Not a success,
    # an attempt refused unchecked, nor failures cleared by a success or `drp user unlock`.
    strike: bool = True


class ApiToken(SQLModel, table=True):
    """A token another council system uses for the JSON API, acting as one person."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    label: str = Field(max_length=100)
    created_at: datetime = _instant()
    expires_at: datetime = _instant()
    last_used_at: datetime | None = _instant(nullable=True, default=None)
    revoked_at: datetime | None = _instant(nullable=True, default=None)
    epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # the person's


_PERSON_COLUMNS = tuple(c.key for c in cast(Any, Person).__table__.columns)


def person_as_read(row: Any) -> Person:
    """A person's row (its columns first, in the table's order) as a Person that belongs to
    no session: for people read, never changed, through it (the unit of work's directory, the
    acting person). Made in a few microseconds, where the ORM's loading of an entity takes
    tens. Setting an attribute on one raises: a change goes through a person the session
    loaded."""
    return Person.model_construct(**{key: row[i] for i, key in enumerate(_PERSON_COLUMNS)})


_Row = TypeVar("_Row", bound=SQLModel)


def new_row(cls: type[_Row], **values: Any) -> _Row:
    """A new row's object, as `cls(**values)` makes it (the fields given, every other field's
    default, SQLAlchemy's state, pydantic's bookkeeping) without that constructor's
    attribute-by-attribute instrumented sets: 13 microseconds for an Alert against 78 (issue
    19: a command's own Python). For the table models a command adds (Alert, Event); nothing is
    validated, as the table models' constructor validates nothing. Unknown names raise. One
    difference: its fields are not recorded as changes (its attributes' history is empty, where
    the constructor's lists each as added): a new object is written whole, so nothing that
    writes one (a flush, drp/alerts/writes.py) asks what changed; a hook that did would."""
    fields = cls.model_fields
    unknown = values.keys() - fields.keys()
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
    obj: _Row = cls.__new__(cls)
    manager: Any = cast(Any, cls)._sa_class_manager
    state = manager._new_state_if_none(obj)
    manager.dispatch.init(state, (), values)  # the mapper's own hooks on a new instance
    d = obj.__dict__
    for name, field in fields.items():
        if name in values:
            d[name] = values[name]
        elif not field.is_required():
            d[name] = field.get_default(call_default_factory=True)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


# The organisation: what reads of people read (a session's pending changes to any of them are
# written first) and what its token guards (drp.orgtoken; migration 0018's triggers).
ORGANISATION = (Person, PersonRole, TeamMember, Cover, Team, Service, Council)


def write_people_changes(session: Session) -> None:
    """A session holding changes not yet written to what reads of people read (people, their
    roles, teams and cover, the line's posts) writes them now, as its own queries would first:
    before such a read, or before taking what was kept of them (drp.orgtoken.held)."""
    if any(isinstance(o, ORGANISATION)
           for o in (*session.new, *session.dirty, *session.deleted)):
        session.flush()


def people_rows(session: Session, statement: Any, values: dict[str, Any]) -> Any:
    """Run a read of people's rows on the session's connection (no ORM loading), the
    session's changes to them written first (`write_people_changes`)."""
    write_people_changes(session)
    return session.connection().execute(statement, values)


@event.listens_for(Person.active, "set", active_history=True)
def _leaving_ends_credentials(person: Person, value: bool, old: object, _initiator: object
                              ) -> None:
    """A person removed from the organisation loses every session and token for good."""
    if old is True and not value:
        person.credential_epoch = (person.credential_epoch or 0) + 1


# --- retention and correction (drp/retention.py, drp/correction.py) ----------------------


class WritePurpose(SQLModel, table=True):
    """On SQLite, the marker the append-only triggers check: a row written at the start of a
    retention or correction transaction and deleted before it commits, so only that
    transaction may change the event and access-log tables (PostgreSQL uses `SET LOCAL
    drp.purpose` instead, which cannot outlive its transaction; drp.retention.purpose)."""

    __tablename__ = "write_purpose"
    purpose: str = Field(primary_key=True, max_length=16)


class RetentionLog(SQLModel, table=True):
    """What one retention batch removed: counts and ids, never content. Written in the
    batch's own transaction, so it records exactly what that transaction removed."""

    __tablename__ = "retention_log"
    id: int | None = Field(default=None, primary_key=True)
    run: str = Field(max_length=32, index=True)  # one id per `drp retention run`
    at: datetime = _instant()
    what: str = Field(max_length=32)  # alert, access_log, mail_body, corrected_text
    rule: str = Field(max_length=200)  # the policy that made it due, in words
    count: int
    ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    channel: str | None = Field(default=None, max_length=8)
    os_user: str | None = Field(default=None, max_length=80)
    client: str | None = Field(default=None, max_length=64)


class Correction(SQLModel, table=True):
    """A corrected text: which (an alert's field, or an event's comment), who, when, why,
    and the original, kept until retention removes it (drp.correction)."""

    __tablename__ = "correction"
    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    event_id: int | None = Field(default=None, foreign_key="event.id")  # a response's text
    field: str = Field(max_length=32)
    original: str | None = Field(default=None, max_length=10000)
    reason: str = Field(max_length=2000)
    actor: str = Field(max_length=80)
    at: datetime = _instant()
    seq: int  # the correction's own event on the alert's timeline
    original_removed_at: datetime | None = _instant(nullable=True, default=None)
    channel: str | None = Field(default=None, max_length=8)
    os_user: str | None = Field(default=None, max_length=80)
    client: str | None = Field(default=None, max_length=64)


# Its home is drp/idempotency.py (imported here so the schema knows every table).
from .casenotes_marks import CasenoteExport as CasenoteExport  # noqa: E402  (casenotes_marks.py)
from .dataversion import DataVersion as DataVersion  # noqa: E402  (its home: dataversion.py)
from .idempotency import IdempotencyKey as IdempotencyKey  # noqa: E402
from .resetlinks import PasswordReset as PasswordReset  # noqa: E402  (its home: resetlinks.py)
