"""bulk timescale runs: due-date indexes, outbox context rendered at delivery

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('context', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_index('ix_alert_open_stage_due', 'alert', ['status', 'on_hold', 'stage_due'])
    op.create_index('ix_alert_held_until', 'alert', ['hold_until'],
                    sqlite_where=sa.text('on_hold = 1'), postgresql_where=sa.text('on_hold'))
    op.create_index('ix_action_not_done_due', 'action',
                    ['done_at', 'overdue_notified_at', 'due'])
    # Indexes the ones above (and the event's unique (alert_id, seq)) make redundant: fewer
    # to maintain on every write.
    op.drop_index('ix_alert_status', table_name='alert')
    op.drop_index('ix_alert_stage_due', table_name='alert')
    op.drop_index('ix_event_alert_id', table_name='event')


def downgrade() -> None:
    # Messages queued in bulk are rendered when sent; without their context they would go out
    # empty. Refuse until they have been delivered.
    waiting = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM outbox WHERE context IS NOT NULL AND text_body = ''"
        " AND status <> 'sent'")).scalar_one()
    if waiting:
        raise RuntimeError(
            f"{waiting} queued e-mail(s) are rendered only when sent; run `drp outbox send`"
            " (or wait for delivery) before downgrading below 0006")
    op.create_index('ix_event_alert_id', 'event', ['alert_id'])
    op.create_index('ix_alert_stage_due', 'alert', ['stage_due'])
    op.create_index('ix_alert_status', 'alert', ['status'])
    op.drop_index('ix_action_not_done_due', table_name='action')
    op.drop_index('ix_alert_held_until', table_name='alert')
    op.drop_index('ix_alert_open_stage_due', table_name='alert')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('context')
