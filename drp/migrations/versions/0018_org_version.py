"""org_version: one row whose token every write to what a person acting is read from changes
(the people, their roles and teams, cover periods, the teams', services' and council's posts),
by triggers in the database itself, so a process may keep a person acting read under a token
and use it while the token stands (drp.ladder.actors.actor_named: issue 19, a command's and a
page's reads). A later migration that rebuilds one of these tables on SQLite (batch mode's
copy and move) drops its triggers and must make them again: tests/test_actor_cache.py writes
to each table at the newest revision and fails on one that no longer moves the token.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What drp.ladder.actors reads a person acting from (and the line's posts beside them).
WATCHED = ("person", "person_role", "team_member", "cover", "team", "service", "council")
# A new random token at every change: a rolled-back change's token is never seen again, and a
# change later in the same transaction moves it on again.
PG_FUNCTION = """
CREATE OR REPLACE FUNCTION drp_org_changed() RETURNS trigger AS $$
BEGIN
    UPDATE org_version SET token = floor((random() - 0.5) * 9.2e18)::bigint WHERE id = 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        'org_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.execute("INSERT INTO org_version (id, token) VALUES (1, 0)")
    if postgresql:
        op.execute(PG_FUNCTION)
    for table in WATCHED:
        if postgresql:
            op.execute(f"CREATE TRIGGER {table}_org_changed AFTER INSERT OR UPDATE OR DELETE"
                       f" OR TRUNCATE ON {table} FOR EACH STATEMENT"
                       " EXECUTE FUNCTION drp_org_changed()")
            continue
        for verb in ("INSERT", "UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_org_changed_{verb.lower()} AFTER {verb} ON"
                       f" {table} BEGIN UPDATE org_version SET token = random()"
                       " WHERE id = 1; END")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in WATCHED:
        if postgresql:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_org_changed ON {table}")
            continue
        for verb in ("INSERT", "UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_org_changed_{verb.lower()}")
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS drp_org_changed()")
    op.drop_table('org_version')
