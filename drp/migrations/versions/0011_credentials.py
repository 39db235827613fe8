"""credentials: API tokens expire and record their last use; sessions and tokens carry the
person's credential epoch (a new password or leaving the organisation moves it on); sign-in
attempts record the client address and whether they count towards the throttle

Existing data: tokens issued before this revision expire 90 days after they were made (at once
if that is past); existing sessions and tokens are in epoch 0, every person's epoch starts at 0;
attempts recorded before keep an empty client address and no longer count towards lock-outs.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
import sqlmodel
from alembic import op

import drp.models

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKEN_DAYS = 90  # the default lifetime of a token (drp.cli.user)


def upgrade() -> None:
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credential_epoch', sa.Integer(), server_default='0',
                                      nullable=False))
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('epoch', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', drp.models.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('last_used_at', drp.models.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('epoch', sa.Integer(), server_default='0', nullable=False))
    tokens = sa.table('api_token', sa.column('id', sa.Integer()),
                      sa.column('created_at', drp.models.UTCDateTime(timezone=True)),
                      sa.column('expires_at', drp.models.UTCDateTime(timezone=True)))
    bind = op.get_bind()
    for row_id, created in bind.execute(sa.select(tokens.c.id, tokens.c.created_at)).all():
        bind.execute(tokens.update().where(tokens.c.id == row_id)
                     .values(expires_at=created + timedelta(days=TOKEN_DAYS)))
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.alter_column('expires_at', existing_type=drp.models.UTCDateTime(timezone=True),
                              nullable=False)
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client', sqlmodel.sql.sqltypes.AutoString(length=64),
                                      server_default='', nullable=False))
        batch_op.add_column(sa.Column('strike', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.create_index(batch_op.f('ix_login_attempt_client'), ['client'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_attempt_client'))
        batch_op.drop_column('strike')
        batch_op.drop_column('client')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('epoch')
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('expires_at')
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_column('epoch')
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('credential_epoch')
