"""retention and correction: a child's optional date of birth; the retention log (what each
retention batch removed: counts and ids); corrections (who corrected which text, why, and the
original until retention removes it); and the append-only triggers on event, access_log and
correction relaxed for exactly those two purposes.

The triggers now let a row change only inside a transaction that has declared its purpose:
on PostgreSQL `SET LOCAL drp.purpose` (read with current_setting, gone at the transaction's
end), on SQLite a row of `write_purpose` written and deleted inside the transaction (SQLite
has no session settings, and its triggers may read only their own database's tables).

- event: DELETE for retention, UPDATE for correction (a response's text);
- access_log: DELETE for retention; never UPDATE;
- correction: DELETE and UPDATE (the original blanked) for retention only;
- retention_log: never changed.

Existing data: no child has a date of birth (the organisation file gives it from now on);
no retention has run and nothing has been corrected.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import drp.models

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, verb) -> the purposes that may do it; absent: nobody.
ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    ("event", "DELETE"): ("retention",),
    ("event", "UPDATE"): ("correction",),
    ("access_log", "DELETE"): ("retention",),
    ("access_log", "UPDATE"): (),
    ("correction", "DELETE"): ("retention",),
    ("correction", "UPDATE"): ("retention",),
    ("retention_log", "DELETE"): (),
    ("retention_log", "UPDATE"): (),
}
OLD_TABLES = ("event", "access_log")  # append-only since 0001

PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION drp_append_only() RETURNS trigger AS $$ BEGIN "
    "IF coalesce(current_setting('drp.purpose', true), '') = ANY(TG_ARGV) THEN "
    "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW; END IF; "
    "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql"
)
PG_FUNCTION_BEFORE = (
    "CREATE OR REPLACE FUNCTION drp_append_only() RETURNS trigger AS $$ BEGIN "
    "RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql"
)


def _sqlite_trigger(table: str, verb: str, purposes: tuple[str, ...]) -> str:
    when = ""
    if purposes:
        listed = ", ".join(f"'{p}'" for p in purposes)
        when = f"WHEN NOT EXISTS (SELECT 1 FROM write_purpose WHERE purpose IN ({listed})) "
    return (f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} {when}"
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


def _pg_trigger(table: str, verb: str, purposes: tuple[str, ...]) -> str:
    args = ", ".join(f"'{p}'" for p in purposes)
    return (f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION drp_append_only({args})")


def upgrade() -> None:
    with op.batch_alter_table('child', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dob', sa.Date(), nullable=True))
    op.create_table(
        'write_purpose',
        sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.PrimaryKeyConstraint('purpose'),
    )
    op.create_table(
        'retention_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('at', drp.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('what', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('ids', sa.JSON(), nullable=False),
        sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column('os_user', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column('client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('retention_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retention_log_run'), ['run'], unique=False)
    op.create_table(
        'correction',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('alert_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('field', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('original', sqlmodel.sql.sqltypes.AutoString(length=10000), nullable=True),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column('at', drp.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('original_removed_at', drp.models.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column('os_user', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column('client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.ForeignKeyConstraint(['alert_id'], ['alert.id'], ),
        sa.ForeignKeyConstraint(['event_id'], ['event.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('correction', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_correction_alert_id'), ['alert_id'], unique=False)

    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in OLD_TABLES:
        if postgresql:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb.lower()}")
    if postgresql:
        op.execute(PG_FUNCTION)
    for (table, verb), purposes in ALLOWED.items():
        op.execute(_pg_trigger(table, verb, purposes) if postgresql
                   else _sqlite_trigger(table, verb, purposes))


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, verb in ALLOWED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb.lower()}"
                   + (f" ON {table}" if postgresql else ""))
    if postgresql:
        op.execute(PG_FUNCTION_BEFORE)
    for table in OLD_TABLES:  # as 0001 made them
        if postgresql:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION drp_append_only()")
        else:
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
    with op.batch_alter_table('correction', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_correction_alert_id'))
    op.drop_table('correction')
    with op.batch_alter_table('retention_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retention_log_run'))
    op.drop_table('retention_log')
    op.drop_table('write_purpose')
    with op.batch_alter_table('child', schema=None) as batch_op:
        batch_op.drop_column('dob')
