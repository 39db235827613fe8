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
# On PostgreSQL a write marks its transaction (`drp.org_changed`, local to it: undone with a
# savepoint rolled back) so the transaction's own reads of people bypass what a process kept,
# and a trigger deferred to its commit gives the row a new random token: no lock on the row
# until the commit (writers of different people do not deadlock over it), and the new token
# and the changes become visible together. The function's search_path is the migration's (a
# writer with another search_path still finds the table).
PG_FUNCTIONS = (
    """
CREATE OR REPLACE FUNCTION drp_org_changing() RETURNS trigger AS $$
BEGIN
    PERFORM set_config('drp.org_changed', 'on', true);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
""",
    """
CREATE OR REPLACE FUNCTION drp_org_changed() RETURNS trigger AS $$
BEGIN
    UPDATE org_version SET token = floor((random() - 0.5) * 9.2e18)::bigint WHERE id = 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql SET search_path FROM CURRENT
""",
)
# A random first token too: data changed under an older schema (or after a downgrade and
# upgrade) never shares a token with what a running process kept.
FIRST = {"postgresql": "floor((random() - 0.5) * 9.2e18)::bigint", "sqlite": "random()"}


def _pg_triggers(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_org_changing AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON"
        f" {table} FOR EACH STATEMENT EXECUTE FUNCTION drp_org_changing()",
        f"CREATE CONSTRAINT TRIGGER {table}_org_changed AFTER INSERT OR UPDATE OR DELETE ON"
        f" {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION"
        " drp_org_changed()",
        # (TRUNCATE has no row to defer with: it moves the token at once.)
        f"CREATE TRIGGER {table}_org_truncated AFTER TRUNCATE ON {table} FOR EACH STATEMENT"
        " EXECUTE FUNCTION drp_org_changed()",
    ]


def _sqlite_triggers(table: str) -> list[str]:
    # SQLite has one writer at a time: the token moves at once, in the writer's transaction.
    return [f"CREATE TRIGGER {table}_org_changed_{verb.lower()} AFTER {verb} ON {table}"
            " BEGIN UPDATE org_version SET token = random() WHERE id = 1; END"
            for verb in ("INSERT", "UPDATE", "DELETE")]


def upgrade() -> None:
    op.create_table(
        'org_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    dialect = op.get_bind().dialect.name
    postgresql = dialect == "postgresql"
    op.execute(f"INSERT INTO org_version (id, token) VALUES (1, {FIRST[dialect]})")
    if postgresql:
        for function in PG_FUNCTIONS:
            op.execute(function)
    for table in WATCHED:
        for statement in _pg_triggers(table) if postgresql else _sqlite_triggers(table):
            op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in WATCHED:
        if postgresql:
            for name in ("changing", "changed", "truncated"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_org_{name} ON {table}")
            continue
        for verb in ("INSERT", "UPDATE", "DELETE"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_org_changed_{verb.lower()}")
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS drp_org_changed()")
        op.execute("DROP FUNCTION IF EXISTS drp_org_changing()")
    op.drop_table('org_version')
