"""the rules the due index's days were worked out under (`council.attention_basis`,
drp.due_index.basis): a protocol or calendar changed since makes the next timescale run look at
every alert again, so no day stored under the old rules can be too late. Existing data: none
recorded, so the first run after upgrading looks again, as after 0016.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('council', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attention_basis', sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('council', schema=None) as batch_op:
        batch_op.drop_column('attention_basis')
