"""Throwaway PostgreSQL databases for tests and benchmarks.

The server is the one at ``HSMGATE_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432``, trust
auth, as on the CI machine). If it does not answer, :func:`ensure_server` starts the local cluster
with ``pg_ctlcluster`` and raises if it still does not answer: PostgreSQL tests never skip.
Each :func:`fresh_database` is a new randomly named database, created through the ``postgres``
maintenance database and dropped (``WITH (FORCE)``) at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

SERVER = os.environ.get("HSMGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
_started_checked = False


def _maintenance() -> psycopg.Connection:
    return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=3)


def _answers() -> bool:
    try:
        with _maintenance() as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def ensure_server() -> None:
    """Make sure the server answers; start the local cluster(s) if not; fail loudly otherwise."""
    global _started_checked
    if _started_checked or _answers():
        _started_checked = True
        return
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").is_dir() else []
    outputs = []
    for version in versions:
        result = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            check=False, capture_output=True, text=True, timeout=60,
        )
        outputs.append(f"pg_ctlcluster {version} main start: rc={result.returncode} {result.stderr.strip()}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if _answers():
            _started_checked = True
            return
        time.sleep(0.25)
    raise RuntimeError(
        f"PostgreSQL at {SERVER} does not answer and could not be started "
        f"(clusters in /etc/postgresql: {versions or 'none'}); " + "; ".join(outputs)
    )


@contextmanager
def fresh_database(prefix: str = "hsmgate_test") -> Iterator[str]:
    """A new empty database; yields its SQLAlchemy URL (``postgresql+psycopg://…``)."""
    ensure_server()
    name = f"{prefix}_{secrets.token_hex(6)}"
    with _maintenance() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with _maintenance() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_name(url: str) -> str:
    """The database name of a :func:`fresh_database` URL."""
    return url.rsplit("/", 1)[1]


def terminate_connections(database: str) -> int:
    """``pg_terminate_backend`` every connection to ``database`` (never another database's, never
    this maintenance connection); returns how many were terminated."""
    with _maintenance() as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,)).fetchall()
    return sum(1 for (terminated,) in rows if terminated)


def allow_connections(database: str, allowed: bool) -> None:
    """``ALTER DATABASE … ALLOW_CONNECTIONS``: with False, new connections to ``database`` are refused
    (existing ones stay until terminated), an outage of that database only."""
    with _maintenance() as connection:
        connection.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')
