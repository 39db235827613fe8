"""Retention (UK GDPR Article 5(1)(e)): what is past its date is removed, in batches, each
batch its own transaction with its own audit record (`retention_log`: counts and ids, never
content). A run that fails halfway leaves every batch done or untouched, and the next run
does the rest: each batch asks the database again what is due, so a rerun, or two runs at
once, never remove anything twice nor anything not due.

What is due (docs/data-protection.md, "Retention"; the periods are settings):
- a closed alert's record (the alert and every row that points at it: events, actions, the
  referral, links, corrections, its e-mails and access-log rows) on the child's birthday
  `retention_birthday` where the organisation file gives the date of birth, otherwise
  `retention_years_after_closure` years after it closed; an open alert is never due;
- an access-log row `retention_access_log_years` after it was written;
- an e-mail's body and context `retention_mail_days` after it was sent (the row stays: who,
  when, the subject);
- a corrected text's original `retention_correction_years` after the correction.

The append-only tables change only inside `purpose(session, ...)`: the database triggers
(migration 0014) refuse any other UPDATE or DELETE of event, access_log and correction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, delete, insert, or_, select, text, update
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, SQLModel, col

from . import audit, db
from .audit import Origin
from .clock import local_date
from .models import AccessLog, Alert, Child, Correction, OutboxMessage, RetentionLog, WritePurpose
from .settings import Settings

PURPOSES = ("retention", "correction")


@contextmanager
def purpose(session: Session, name: str) -> Iterator[None]:
    """Inside, and only inside, this transaction the append-only triggers let `name`'s
    changes through (retention deletes; correction updates an event's text). On PostgreSQL a
    transaction-local setting; on SQLite a marker row, deleted again before the transaction
    commits (if the transaction fails, its rollback takes the row with it)."""
    if name not in PURPOSES:
        raise ValueError(f"{name!r} is not a purpose that may change the audit trail")
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        session.execute(text("SELECT set_config('drp.purpose', :p, true)"), {"p": name})
    else:
        session.execute(insert(WritePurpose).values(purpose=name))
    try:
        yield
    except BaseException:
        # The marker must never outlive a failure: a caller that caught the error and
        # committed would otherwise commit the triggers' permission with it.
        session.rollback()
        raise
    session.flush()
    if postgresql:
        session.execute(text("SELECT set_config('drp.purpose', '', true)"))
    else:
        session.execute(delete(WritePurpose).where(col(WritePurpose.purpose) == name))


def years_before(day: date, years: int) -> date:
    """The same day `years` earlier; 29 February becomes the 28th."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def instant_years_before(instant: datetime, years: int) -> datetime:
    try:
        return instant.replace(year=instant.year - years)
    except ValueError:
        return instant.replace(year=instant.year - years, day=28)


@dataclass(frozen=True)
class Policy:
    birthday: int = 25
    years_after_closure: int = 25
    access_log_years: int = 2
    mail_days: int = 90
    correction_years: int = 2
    batch: int = 500

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(birthday=settings.retention_birthday,
                   years_after_closure=settings.retention_years_after_closure,
                   access_log_years=settings.retention_access_log_years,
                   mail_days=settings.retention_mail_days,
                   correction_years=settings.retention_correction_years,
                   batch=settings.retention_batch)


@dataclass(frozen=True)
class Rule:
    """One kind of thing retention removes: which rows are due now (their ids, oldest
    first), and how a batch of them is removed (returning, by table, the ids it removed)."""

    what: str
    rule: str
    due: Callable[[int | None], Any]  # limit -> a SELECT of ids
    remove: Callable[[Session, list[int]], dict[str, list[int]]]


def rules(policy: Policy, now: datetime, tz: ZoneInfo) -> list[Rule]:
    """The rules in the order a run applies them (an alert's record first: it takes its own
    access-log rows, e-mails and corrections with it)."""
    today = local_date(now, tz)
    born_by = years_before(today, policy.birthday)  # born on or before: the birthday is past
    closed_by = instant_years_before(now, policy.years_after_closure)
    logged_by = instant_years_before(now, policy.access_log_years)
    sent_by = now - timedelta(days=policy.mail_days)
    corrected_by = instant_years_before(now, policy.correction_years)

    alert_due = and_(
        col(Alert.status) != "open", col(Alert.closed_at).is_not(None),
        or_(col(Child.dob) <= born_by,
            and_(col(Child.dob).is_(None), col(Alert.closed_at) <= closed_by)))

    def alerts(limit: int | None) -> Any:
        query = (select(col(Alert.id)).join(Child, col(Child.id) == col(Alert.child_id))
                 .where(alert_due).order_by(col(Alert.id)))
        return query if limit is None else query.limit(limit)

    def access_logs(limit: int | None) -> Any:
        query = select(col(AccessLog.id)).where(col(AccessLog.at) < logged_by).order_by(
            col(AccessLog.id))
        return query if limit is None else query.limit(limit)

    mail_due = and_(col(OutboxMessage.sent_at).is_not(None), col(OutboxMessage.sent_at) <= sent_by,
                    or_(col(OutboxMessage.text_body) != "", col(OutboxMessage.html_body) != "",
                        col(OutboxMessage.context).is_not(None)))

    def mails(limit: int | None) -> Any:
        query = select(col(OutboxMessage.id)).where(mail_due).order_by(col(OutboxMessage.id))
        return query if limit is None else query.limit(limit)

    original_due = and_(col(Correction.original).is_not(None),
                        col(Correction.at) <= corrected_by)

    def originals(limit: int | None) -> Any:
        query = select(col(Correction.id)).where(original_due).order_by(col(Correction.id))
        return query if limit is None else query.limit(limit)

    def remove_alerts(session: Session, ids: list[int]) -> dict[str, list[int]]:
        # Asked again inside the batch's transaction, the alerts' rows locked (PostgreSQL; on
        # SQLite the transaction's write lock does it): an alert reopened since is not taken,
        # and none can be reopened between this question and the delete.
        ids = list(session.execute(
            alerts(None).where(col(Alert.id).in_(ids)).with_for_update(of=Alert)).scalars())
        return remove_records(session, "alert", ids)

    def remove_access_logs(session: Session, ids: list[int]) -> dict[str, list[int]]:
        gone = list(session.execute(delete(AccessLog).where(
            col(AccessLog.id).in_(ids), col(AccessLog.at) < logged_by
        ).returning(col(AccessLog.id))).scalars())
        return {"access_log": sorted(gone)}

    def blank_mails(session: Session, ids: list[int]) -> dict[str, list[int]]:
        gone = list(session.execute(update(OutboxMessage).where(
            col(OutboxMessage.id).in_(ids), mail_due
        ).values(text_body="", html_body="", context=None).returning(col(OutboxMessage.id))
        ).scalars())
        return {"mail_body": sorted(gone)}

    def blank_originals(session: Session, ids: list[int]) -> dict[str, list[int]]:
        gone = list(session.execute(update(Correction).where(
            col(Correction.id).in_(ids), original_due
        ).values(original=None, original_removed_at=now).returning(col(Correction.id))).scalars())
        return {"corrected_text": sorted(gone)}

    closure = (f"closed alerts, on the child's {ordinal(policy.birthday)} birthday (date of"
               f" birth known) or {policy.years_after_closure} years after closure")
    return [
        Rule("alert", closure, alerts, remove_alerts),
        Rule("access_log", f"access-log rows older than {policy.access_log_years} years",
             access_logs, remove_access_logs),
        Rule("mail_body", f"e-mail bodies sent more than {policy.mail_days} days ago",
             mails, blank_mails),
        Rule("corrected_text", "corrected texts' originals, corrected more than"
             f" {policy.correction_years} years ago", originals, blank_originals),
    ]


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _dependants(table: Table) -> list[tuple[Table, list[Any]]]:
    """Every table with a foreign key to `table`, with its columns that hold one (found from
    the schema, so a table added later that points at an alert or an event goes too)."""
    found = []
    for other in SQLModel.metadata.sorted_tables:
        columns = [fk.parent for fk in other.foreign_keys if fk.column.table is table]
        if columns and other is not table:
            found.append((other, columns))
    return found


def remove_records(session: Session, name: str, ids: list[int]) -> dict[str, list[int]]:
    """Delete rows `ids` of table `name` and, first, every row that points at them (and at
    those, and so on), in the caller's transaction: by table, the ids removed (a table
    without a single id column is counted, its ids not listed)."""
    table = SQLModel.metadata.tables[name]
    removed: dict[str, list[int]] = {}
    if not ids:
        return removed
    for other, columns in _dependants(table):
        condition: ColumnElement[bool] = or_(*[c.in_(ids) for c in columns])
        key = list(other.primary_key.columns)
        if len(key) == 1:
            child_ids = list(session.execute(select(key[0]).where(condition)).scalars())
            for kind, gone in remove_records(session, other.name, child_ids).items():
                removed.setdefault(kind, []).extend(gone)
        else:  # a link table (alert_link): nothing points at it
            result = session.execute(delete(other).where(condition))
            count = cast(CursorResult[Any], result).rowcount
            if count:
                removed.setdefault(other.name + ":count", []).append(count)
    session.execute(delete(table).where(next(iter(table.primary_key.columns)).in_(ids)))
    removed.setdefault(name, []).extend(ids)
    return removed


@dataclass
class RetentionReport:
    run: str
    now: datetime
    dry_run: bool
    rules: dict[str, str] = field(default_factory=dict)  # what -> the rule in words
    removed: dict[str, list[int]] = field(default_factory=dict)  # table -> ids
    counts: dict[str, int] = field(default_factory=dict)  # table -> rows
    batches: int = 0

    def add(self, removed: dict[str, list[int]]) -> None:
        for kind, ids in removed.items():
            if kind.endswith(":count"):
                table = kind.removesuffix(":count")
                self.counts[table] = self.counts.get(table, 0) + sum(ids)
            else:
                self.removed.setdefault(kind, []).extend(ids)
                self.counts[kind] = self.counts.get(kind, 0) + len(ids)

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run, "now": self.now.isoformat(), "dry_run": self.dry_run,
                "batches": self.batches, "counts": dict(sorted(self.counts.items())),
                "ids": {k: sorted(v) for k, v in sorted(self.removed.items())},
                "rules": self.rules}

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        if not any(self.counts.values()):
            return [f"Retention as of {self.now:%Y-%m-%d %H:%M} UTC: nothing is past its date."]
        out = [f"Retention as of {self.now:%Y-%m-%d %H:%M} UTC ({verb}; run {self.run},"
               f" {self.batches} batch{'es' if self.batches != 1 else ''}):"]
        for kind, count in sorted(self.counts.items()):
            if count:
                out.append(f"  {kind}: {count}")
        return out


def _log(session: Session, run: str, now: datetime, rule: Rule, removed: dict[str, list[int]],
         origin: Origin | None) -> None:
    where = audit.columns(origin if origin is not None else audit.current())
    for kind, ids in sorted(removed.items()):
        if not ids:
            continue
        counted = kind.endswith(":count")
        session.add(RetentionLog(
            run=run, at=now, what=kind.removesuffix(":count"), rule=rule.rule[:200],
            count=sum(ids) if counted else len(ids), ids=[] if counted else sorted(ids),
            **where))


def _batch(session: Session, run: str, now: datetime, rule: Rule, limit: int,
           origin: Origin | None) -> dict[str, list[int]]:
    """The next `limit` rows due, removed, and the record of what was removed, in `session`'s
    transaction (a run's: one per batch; a dry run's: one for everything, rolled back)."""
    ids = list(session.execute(rule.due(limit)).scalars())
    if not ids:
        return {}
    with purpose(session, "retention"):
        removed = rule.remove(session, ids)
    _log(session, run, now, rule, removed, origin)
    return removed


def _in_own_transaction(engine: Engine, run: str, now: datetime, rule: Rule, limit: int,
                        origin: Origin | None) -> dict[str, list[int]]:
    """One batch, one transaction: all of it or none."""
    with db.transaction(engine) as session:
        return _batch(session, run, now, rule, limit, origin)


def run(engine: Engine, policy: Policy, *, now: datetime, tz: ZoneInfo, dry_run: bool = False,
        origin: Origin | None = None) -> RetentionReport:
    """Remove everything past its date as of `now`, batch by batch. `dry_run`: the same
    batches in one transaction, rolled back, so the report says exactly what a run would
    remove (an alert's rows with it) and nothing changes."""
    report = RetentionReport(run=uuid.uuid4().hex, now=now, dry_run=dry_run)
    with Session(engine) as dry:
        for rule in rules(policy, now, tz):
            report.rules[rule.what] = rule.rule
            seen: set[int] = set()
            while True:
                removed = (_batch(dry, report.run, now, rule, policy.batch, origin) if dry_run
                           else _in_own_transaction(engine, report.run, now, rule,
                                                    policy.batch, origin))
                if not removed:
                    break
                mine = set(removed.get(rule.what, []))
                if mine & seen or not mine:  # removed and still due: a rule that never ends
                    raise RuntimeError(f"retention of {rule.what} is not making progress")
                seen |= mine
                report.batches += 1
                report.add(removed)
        dry.rollback()
    return report
