"""Alembic environment: the URL comes from popex settings (or the connection given by the caller)."""

from alembic import context

from base.db import database_url
from registry.db import Base
from registry.migrate import import_all_models, include_name

import_all_models()  # registers every table on Base.metadata

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations on the caller's connection, or on a new one to the configured database."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
        return
    from sqlalchemy import create_engine

    engine = create_engine(database_url())
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
