"""data_version: one row whose token every write to an alert and what its pages show changes
(alerts, their events, actions, referrals, links and corrections, children, closure days,
case-note exports), by triggers in the database itself, as org_version's for the
organisation (0018). A page read under both tokens (and the day) may be answered again from
what the process kept while neither moves (drp.web.pagecache: issue 19, a page's reads). A
later migration that rebuilds one of these tables on SQLite (batch mode's copy and move)
drops its triggers and must make them again: tests/test_pagecache.py checks every table has
them at the newest revision.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = ("alert", "event", "action", "referral", "alert_link", "correction", "child",
           "closure", "casenote_export")
# On PostgreSQL a trigger deferred to the writer's commit gives the row a new random token,
# once a transaction (a setting local to it says it has): no lock on the row until the commit
# (writers of different alerts do not wait for each other), one new row version however many
# rows the transaction wrote, and the new token and the changes become visible together. A
# transaction that changed the organisation too (0018's `drp.org_changed`) takes the
# organisation's token row first, whichever trigger its commit runs first: two such writers
# never hold the two rows in opposite orders (a deadlock at commit).
PG_FUNCTION = """
CREATE OR REPLACE FUNCTION drp_data_changed() RETURNS trigger AS $$
BEGIN
    IF current_setting('drp.data_changed', true) IS DISTINCT FROM 'on' THEN
        PERFORM set_config('drp.data_changed', 'on', true);
        IF current_setting('drp.org_changed', true) = 'on' THEN
            PERFORM 1 FROM org_version WHERE id = 1 FOR UPDATE;
        END IF;
        UPDATE data_version SET token = floor((random() - 0.5) * 9.2e18)::bigint WHERE id = 1;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql SET search_path FROM CURRENT
"""
# (TRUNCATE has no row to defer with: it moves the token at once, by the same function.)
PG_TRUNCATED = """
CREATE OR REPLACE FUNCTION drp_data_truncated() RETURNS trigger AS $$
BEGIN
    UPDATE data_version SET token = floor((random() - 0.5) * 9.2e18)::bigint WHERE id = 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql SET search_path FROM CURRENT
"""
FIRST = {"postgresql": "floor((random() - 0.5) * 9.2e18)::bigint", "sqlite": "random()"}


def _pg_triggers(table: str) -> list[str]:
    return [
        f"CREATE CONSTRAINT TRIGGER {table}_data_changed AFTER INSERT OR UPDATE OR DELETE ON"
        f" {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION"
        " drp_data_changed()",
        f"CREATE TRIGGER {table}_data_truncated AFTER TRUNCATE ON {table} FOR EACH STATEMENT"
        " EXECUTE FUNCTION drp_data_truncated()",
    ]


def _sqlite_triggers(table: str) -> list[str]:
    # SQLite has one writer at a time: the token moves at once, in the writer's transaction.
    return [f"CREATE TRIGGER {table}_data_changed_{verb.lower()} AFTER {verb} ON {table}"
            " BEGIN UPDATE data_version SET token = random() WHERE id = 1; END"
            for verb in ("INSERT", "UPDATE", "DELETE")]


def upgrade() -> None:
    op.create_table(
        'data_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    dialect = op.get_bind().dialect.name
    postgresql = dialect == "postgresql"
    op.execute(f"INSERT INTO data_version (id, token) VALUES (1, {FIRST[dialect]})")
    if postgresql:
        op.execute(PG_FUNCTION)
        op.execute(PG_TRUNCATED)
    for table in WATCHED:
        for statement in _pg_triggers(table) if postgresql else _sqlite_triggers(table):
            op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in WATCHED:
        if postgresql:
            for name in ("changed", "truncated"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_data_{name} ON {table}")
            continue
        for verb in ("INSERT", "UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_data_changed_{verb.lower()}")
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS drp_data_changed()")
        op.execute("DROP FUNCTION IF EXISTS drp_data_truncated()")
    op.drop_table('data_version')
