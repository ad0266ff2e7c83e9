"""Least privilege on PostgreSQL (store/grants.py, ``hsmgate db grants``), against the real server:
two roles in a throwaway database, the schema migrated as the owner, the grants applied, a serving
workload through an app built with the serving role's URL — and the serving role refused UPDATE,
DELETE, TRUNCATE, DISABLE TRIGGER (and DROP TRIGGER) on the audit tables, which the owner could do."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from hsmgate.cli import cli
from hsmgate.store.grants import grant_statements, serving_privileges
from tests.helpers import LiveServer, soft_settings
from tests.postgres import SERVER, ensure_server, fresh_database

pytestmark = pytest.mark.postgres

AUDIT_TABLES = ("audit_log", "audit_checkpoints")
#: What an attacker holding the serving role's credentials would try on the audit log.
FORBIDDEN = (
    "UPDATE {table} SET partition = 'elsewhere'",
    "DELETE FROM {table}",
    "TRUNCATE {table}",
    "ALTER TABLE {table} DISABLE TRIGGER ALL",
    "ALTER TABLE {table} DISABLE TRIGGER {table}_append_only",
    "DROP TRIGGER {table}_append_only ON {table}",
)


@contextmanager
def login_roles(*names: str) -> Iterator[None]:
    """Cluster-wide roles, dropped at the end (after the databases that mention them)."""
    ensure_server()
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
        for name in names:
            connection.execute(f'CREATE ROLE "{name}" LOGIN')
    try:
        yield
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
            for name in names:
                connection.execute(f'DROP ROLE IF EXISTS "{name}"')


def as_role(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def driver_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def grants_cli(*args: str) -> object:
    return CliRunner().invoke(cli, ["db", "grants", *args])


def test_the_statements_give_the_serving_role_only_select_and_insert_on_the_audit() -> None:
    privileges = serving_privileges()
    assert privileges["audit_log"] == privileges["audit_checkpoints"] == ("SELECT", "INSERT")
    assert privileges["audit_chain_heads"] == ("SELECT", "INSERT", "UPDATE")
    assert privileges["alembic_version"] == ("SELECT",)
    assert all("TRUNCATE" not in p and "TRIGGER" not in p for p in privileges.values())
    statements = grant_statements('serve"r')
    assert statements[0] == 'REVOKE ALL ON ALL TABLES IN SCHEMA "public" FROM "serve""r"'
    assert 'GRANT SELECT, INSERT ON "public"."audit_log" TO "serve""r"' in statements
    printed = grants_cli("--role", "hsmgate_serve")
    assert printed.exit_code == 0  # type: ignore[attr-defined]
    assert printed.output.splitlines() == [s.replace('"serve""r"', '"hsmgate_serve"') + ";"  # type: ignore[attr-defined]
                                           for s in statements]


def test_a_serving_role_cannot_rewrite_the_audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = secrets.token_hex(4)
    owner, serving = f"hsmgate_owner_{suffix}", f"hsmgate_serve_{suffix}"
    with login_roles(owner, serving), fresh_database() as url:
        name = make_url(url).database
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as connection:
            connection.execute(f'ALTER DATABASE "{name}" OWNER TO "{owner}"')
        owner_url, serving_url = as_role(url, owner), as_role(url, serving)
        migrated = CliRunner().invoke(cli, ["db", "migrate", "--database-url", owner_url])
        assert migrated.exit_code == 0, migrated.output

        refused = grants_cli("--role", owner, "--apply", "--database-url", owner_url)
        assert refused.exit_code == 2 and "owns the tables" in refused.output  # type: ignore[attr-defined]
        applied = grants_cli("--role", serving, "--apply", "--database-url", owner_url)
        assert applied.exit_code == 0, applied.output  # type: ignore[attr-defined]

        settings = soft_settings(tmp_path / "data", database_url=serving_url, audit_checkpoint_interval=2)
        payload = b"signed under least privilege"
        with LiveServer(settings) as server, server.client() as http:
            created = http.post("/v1/key", json={"label": "least", "algorithm": "ED", "curveOid": "1.3.101.112",
                                                 "attributes": {"sign": True, "decrypt": False, "unwrap": False,
                                                                "destroyable": True}})
            assert created.status_code == 201, created.text
            signed = http.post("/v1/synchronousSign", json={"signRequest": {
                "signKeyName": "least", "payload": base64.b64encode(payload).decode(), "signatureAlgorithm": "EDDSA"}})
            assert signed.status_code == 200, signed.text
            assert http.delete("/v1/key/least").status_code == 200
        public = serialization.load_der_public_key(base64.b64decode(created.json()["json"]["publicKey"]))
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(base64.b64decode(signed.json()["signature"]), payload)

        with psycopg.connect(driver_url(serving_url), autocommit=True) as connection:
            records = connection.execute("SELECT count(*) FROM audit_log").fetchone()[0]  # type: ignore[index]
            checkpoints = connection.execute("SELECT count(*) FROM audit_checkpoints").fetchone()[0]  # type: ignore[index]
            assert records >= 5 and checkpoints >= 2  # written by the serving role
            for table in AUDIT_TABLES:
                for statement in FORBIDDEN:
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        connection.execute(statement.format(table=table))
            assert connection.execute("SELECT count(*) FROM audit_log").fetchone()[0] == records  # type: ignore[index]

        for name, value in (("HSMGATE_DATABASE_URL", serving_url), ("HSMGATE_DATA_DIR", str(settings.data_dir)),
                            ("HSMGATE_MASTER_KEY", settings.master_key.get_secret_value()),  # type: ignore[union-attr]
                            ("HSMGATE_AUDIT_CHECKPOINT_INTERVAL", "2")):
            monkeypatch.setenv(name, value)
        verified = CliRunner().invoke(cli, ["audit", "verify"])  # reading is enough for the verifier
        assert verified.exit_code == 0 and "anchored checkpoints" in verified.output, verified.output

        with psycopg.connect(driver_url(owner_url), autocommit=True) as connection:  # the control: the owner can
            connection.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            connection.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
