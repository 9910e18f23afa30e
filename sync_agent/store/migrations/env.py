"""Alembic environment: run migrations on the connection the agent hands over.

The agent migrates its own store at start (``sync_agent.store.engine.migrate``), so a ward IT
officer never runs Alembic by hand; developers can still use ``alembic -c
sync_agent/store/alembic.ini`` to write a new revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from sync_agent.store.tables import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section) or {},
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


run()
