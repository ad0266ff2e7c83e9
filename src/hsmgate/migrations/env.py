"""Alembic environment: runs migrations on the engine handed over by ``Database.migrate``."""

from alembic import context
from sqlalchemy import create_engine

from hsmgate.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if config.attributes.get("connection") is not None:  # Database.migrate: its connection, inside its lock
    _run(config.attributes["connection"])
else:
    engine = config.attributes.get("connection_engine") or create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        _run(connection)
