"""Alembic environment: drp passes its engine in `config.attributes` (see drp.db)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import drp.models  # noqa: F401  (every table must be imported, or autogenerate drops it)

target_metadata = SQLModel.metadata
config = context.config


def run_migrations_online() -> None:
    engine = config.attributes["engine"]
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite cannot ALTER most things
            compare_type=True,
        )
        context.run_migrations()


run_migrations_online()
