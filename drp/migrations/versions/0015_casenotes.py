"""case notes: the child's optional record id in the council's case-management system (case
notes are keyed by it), and the marks of case notes already exported (`drp export
casenotes`), one per note (its event's id)

Existing data: no child has a record id (the organisation file gives it from now on); no
case note has been exported, so the first export gives every note since the instant asked.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import drp.models

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('child', schema=None) as batch_op:
        batch_op.add_column(sa.Column('record_id', sqlmodel.sql.sqltypes.AutoString(length=40),
                                      nullable=True))
    op.create_table(
        'casenote_export',
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('exported_at', drp.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('event_id'),
    )


def downgrade() -> None:
    op.drop_table('casenote_export')
    with op.batch_alter_table('child', schema=None) as batch_op:
        batch_op.drop_column('record_id')
