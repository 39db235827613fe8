"""Alembic environment: drp passes its engine in `config.attributes` (see drp.db)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import drp.models  # noqa: F401  (every table must be imported, or autogenerate drops it)

target_metadata = SQLModel.metadata
config = context.config


def run_migrations_online() -> None:
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations rebuild tables; SQLite refuses to drop a table that other rows
            # point at while foreign keys are enforced, and the pragma only takes effect
            # outside a transaction. It is turned back on before the connection is reused.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=True,  # SQLite cannot ALTER most things
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


run_migrations_online()
