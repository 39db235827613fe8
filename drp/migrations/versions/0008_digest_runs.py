"""digest runs: a fortnight's digest has run, whether or not anyone received one

Existing data: each fortnight with a digest already in the outbox (keys
digest:<fortnight>:<username>) is recorded as run, at its first row's time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
import notifications.models  # noqa: F401  (UTCDateTime)
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    digest_run = op.create_table('digest_run',
    sa.Column('fortnight', sa.Date(), nullable=False),
    sa.Column('ran_at', notifications.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('fortnight')
    )
    outbox = sa.table('outbox', sa.column('key', sa.String()),
                      sa.column('created_at', notifications.models.UTCDateTime(timezone=True)))
    first: dict[date, object] = {}
    for key, created_at in op.get_bind().execute(
            sa.select(outbox.c.key, outbox.c.created_at)
            .where(outbox.c.key.like('digest:%')).order_by(outbox.c.created_at)):
        try:
            fortnight = date.fromisoformat(key.split(':')[1])
        except (IndexError, ValueError):
            continue
        first.setdefault(fortnight, created_at)
    if first:
        op.bulk_insert(digest_run, [{'fortnight': f, 'ran_at': at} for f, at in first.items()])


def downgrade() -> None:
    op.drop_table('digest_run')
