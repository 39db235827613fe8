"""origin: where each event and access-log row came from (channel cli, web, api or flow; the
operating-system user of a command line, the client address of a web or API request)

Existing data: rows written before this revision keep NULL in the three columns (their origin
was not recorded). Columns are added only, so on SQLite the event table is not rebuilt and its
append-only triggers stay; the downgrade rebuilds it and makes them again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ('event', 'access_log')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, length in (('channel', 8), ('os_user', 80), ('client', 64)):
                batch_op.add_column(sa.Column(
                    name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('client')
            batch_op.drop_column('os_user')
            batch_op.drop_column('channel')
    if op.get_bind().dialect.name == "sqlite":  # event was rebuilt, without its triggers
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS event_no_{verb.lower()}")
            op.execute(f"CREATE TRIGGER event_no_{verb.lower()} BEFORE {verb} ON event "
                       "BEGIN SELECT RAISE(ABORT, 'event is append-only'); END")
