"""password reset links: one-time links an administrator has sent a person by e-mail to set
a new password (only each token's sha256 is kept), each expiring, used at most once

Existing data: none (no link has been sent).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import drp.models

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'password_reset',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column('created_at', drp.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', drp.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('used_at', drp.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('password_reset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_reset_person_id'), ['person_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('password_reset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_reset_person_id'))
    op.drop_table('password_reset')
