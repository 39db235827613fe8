"""the due index: each alert's first day on which the timescale run has something to do
(`alert.attention_on`, drp.ladder.attention), indexed, so that a run with nothing due is one
index probe and the run's queries read only the alerts whose day has come.

Existing data: a held alert's day is the day its hold ends (exact: nothing else runs while
held). An alert that may need the run for anything else (open, not held, its stage awaiting
a response, or with agreed actions not done while open or resolved) gets 1970-01-01, "look
at it now": the day of a reminder depends on the council's protocol and calendar, which a
migration does not know, and a day too early costs one look where a day too late would miss
a reminder. The first timescale run after upgrading looks at each, as every run did before
the index, and settles it to its exact day (drp.due_index.settle). Every other alert (closed,
answered and waiting for the IRO, good practice) needs nothing: NULL.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (AutoString)
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EARLIEST = date(1970, 1, 1)  # drp.ladder.attention.EARLIEST


def upgrade() -> None:
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attention_on', sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f('ix_alert_attention_on'), ['attention_on'],
                              unique=False)
    alert = sa.table('alert', sa.column('id'), sa.column('status'), sa.column('on_hold'),
                     sa.column('hold_until'), sa.column('stage_due'),
                     sa.column('stage_responded_at'), sa.column('attention_on'))
    action = sa.table('action', sa.column('alert_id'), sa.column('done_at'))
    open_actions = sa.exists().where(action.c.alert_id == alert.c.id, action.c.done_at.is_(None))
    op.execute(alert.update().where(
        alert.c.status == 'open', alert.c.on_hold == sa.true(), alert.c.hold_until.is_not(None)
    ).values(attention_on=alert.c.hold_until))
    op.execute(alert.update().where(
        alert.c.on_hold == sa.false(),
        sa.or_(sa.and_(alert.c.status == 'open', alert.c.stage_due.is_not(None),
                       alert.c.stage_responded_at.is_(None)),
               sa.and_(alert.c.status.in_(('open', 'resolved')), open_actions)),
    ).values(attention_on=EARLIEST))


def downgrade() -> None:
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_attention_on'))
        batch_op.drop_column('attention_on')
