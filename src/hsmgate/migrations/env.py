"""Alembic environment: runs migrations on the engine handed over by ``Database.migrate``."""

from alembic import context
from sqlalchemy import create_engine

from hsmgate.store.models import Base

config = context.config
target_metadata = Base.metadata

engine = config.attributes.get("connection_engine") or create_engine(config.get_main_option("sqlalchemy.url"))
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
