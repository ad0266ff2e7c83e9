"""The store tests run against SQLite and against PostgreSQL (a fresh database per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hsmgate.store.database import Database
from tests.helpers import DATABASES
from tests.postgres import fresh_database


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture()
def database(database_url: str) -> Iterator[Database]:
    """A migrated :class:`Database` on ``database_url``."""
    db = Database(database_url)
    db.migrate()
    try:
        yield db
    finally:
        db.dispose()
