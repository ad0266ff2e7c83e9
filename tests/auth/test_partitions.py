"""Partitions (1:n): the CLI, sealed PINs, and isolation over real HTTP — a principal of one
partition never sees, uses or learns of the keys of another."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from hsmgate.auth.roles import Role
from hsmgate.cli import cli
from hsmgate.domain.partitions import PartitionError, PartitionRegistry
from hsmgate.store.database import Database
from hsmgate.store.models import PartitionRecord
from hsmgate.store.partitions import PartitionRepository
from tests.auth.conftest import API_KEY_SETTINGS, ROLE_KEYS, ec_key_body, sign_body
from tests.helpers import LiveServer, assert_tsb_error
from tests.softhsm import SoftHsmToken

pytest_plugins = ["tests.softhsm_fixtures"]  # one SoftHSM2 directory per test session (SOFTHSM2_CONF)

ISSUER, AUDIENCE, SECRET = "https://issuer.test", "hsmgate", "partition-tests-hs256-secret-0123456789"
JWT_SETTINGS = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, "jwt_hs256_secret": SECRET}


def token(partition: str, *roles: str, sub: str = "alice") -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": sub, "partition": partition, "roles": list(roles or ("keyManagement", "keyOperation")),
              "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


class Cli:
    def __init__(self, data_dir: Path, master_key: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HSMGATE_DATA_DIR", str(data_dir))
        monkeypatch.setenv("HSMGATE_MASTER_KEY", master_key)
        monkeypatch.delenv("HSMGATE_CONFIG", raising=False)
        monkeypatch.delenv("HSMGATE_PARTITION", raising=False)

    def __call__(self, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(cli, ["partition", *args], input=input)


@pytest.fixture()
def master_key() -> str:
    return base64.b64encode(bytes(range(32))).decode()


@pytest.fixture()
def partition_cli(tmp_path: Path, master_key: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(tmp_path / "data", master_key, monkeypatch)


def test_cli_add_list_remove(partition_cli: Cli, tmp_path: Path) -> None:
    assert partition_cli("add", "team-b", "--backend", "soft").exit_code == 0
    pin_file = tmp_path / "pin"
    pin_file.write_text("98765432\n")
    added = partition_cli("add", "hsm-c", "--backend", "pkcs11", "--module", "/opt/vendor/libpkcs11.so",
                          "--token-label", "prod", "--pin-file", str(pin_file), "--no-check")
    assert added.exit_code == 0, added.output
    listing = partition_cli("list")
    assert listing.exit_code == 0
    assert listing.output.splitlines() == ["default\tsoft\t(settings)", "hsm-c\tpkcs11\t/opt/vendor/libpkcs11.so token prod",
                                           "team-b\tsoft"]
    assert "98765432" not in listing.output
    duplicate = partition_cli("add", "team-b", "--backend", "soft")
    assert duplicate.exit_code == 2 and "already exists" in duplicate.output
    same_token = partition_cli("add", "hsm-d", "--backend", "pkcs11", "--module", "/opt/vendor/libpkcs11.so",
                               "--token-label", "prod", "--pin-file", str(pin_file), "--no-check")
    assert same_token.exit_code == 2 and "already uses this token" in same_token.output
    for bad in (["add", "default", "--backend", "soft"], ["add", "../x", "--backend", "soft"],
                ["add", "p", "--backend", "pkcs11", "--module", "/m.so", "--token-label", "t", "--no-check"],
                ["remove", "nope"]):
        result = partition_cli(*bad)
        # one message (rich wraps it at the terminal width), no traceback
        assert result.exit_code == 2 and result.output.count("hsmgate:") == 1, result.output
        assert "Traceback" not in result.output
    assert partition_cli("remove", "hsm-c").exit_code == 0
    assert "hsm-c" not in partition_cli("list").output


def test_pin_is_sealed_and_bound_to_the_partition_name(partition_cli: Cli, tmp_path: Path, master_key: str) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("secret-pin-4711")
    for name, label in (("hsm-a", "token-a"), ("hsm-b", "token-b")):
        result = partition_cli("add", name, "--backend", "pkcs11", "--module", "/m.so", "--token-label", label,
                               "--pin-file", str(pin_file), "--no-check")
        assert result.exit_code == 0, result.output
    db = Database(f"sqlite:///{tmp_path / 'data' / 'state.db'}")
    try:
        with db.engine.connect() as connection:
            raw = b"".join(row.sealed_secret for row in connection.execute(select(PartitionRecord.sealed_secret)))
            assert b"secret-pin-4711" not in raw
            dump = b"".join(bytes(str(tuple(row)), "utf8") for row in connection.execute(select(PartitionRecord)))
            assert b"secret-pin-4711" not in dump
        repository = PartitionRepository(db)
        key = base64.b64decode(master_key)
        assert {p.name: p.pin for p in PartitionRegistry(repository, key).load()} == \
            {"hsm-a": "secret-pin-4711", "hsm-b": "secret-pin-4711"}
        with pytest.raises(PartitionError, match="wrong master key"):
            PartitionRegistry(repository, bytes(32)).load()
        with db.engine.begin() as connection:  # move a's sealed PIN into b's row: it must not open there
            sealed = connection.execute(select(PartitionRecord.sealed_secret, PartitionRecord.secret_nonce)
                                        .where(PartitionRecord.name == "hsm-a")).one()
            connection.execute(update(PartitionRecord).where(PartitionRecord.name == "hsm-b")
                               .values(sealed_secret=sealed.sealed_secret, secret_nonce=sealed.secret_nonce))
        with pytest.raises(PartitionError, match="'hsm-b' does not open"):
            PartitionRegistry(repository, key).load()
    finally:
        db.dispose()


def test_keys_of_another_partition_are_invisible(partition_cli: Cli, serve: Callable[..., LiveServer],
                                                 tmp_path: Path, master_key: str) -> None:
    assert partition_cli("add", "team-b", "--backend", "soft").exit_code == 0
    server = serve(tmp_path / "data", master_key=master_key, **JWT_SETTINGS, **API_KEY_SETTINGS)
    a, b = token("default"), token("team-b", sub="bob")
    with server.client() as http:
        assert http.post("/v1/key", headers=a, json=ec_key_body("alpha-only")).status_code == 201
        assert http.post("/v1/key", headers=a, json=ec_key_body("same-name")).status_code == 201
        assert http.post("/v1/key", headers=b, json=ec_key_body("same-name")).status_code == 201

        assert "alpha-only" not in http.get("/v1/key", headers=b).json()
        assert "alpha-only" in http.get("/v1/key", headers=a).json()
        unknown = http.get("/v1/key/never-existed/attributes", headers=b)
        hidden = http.get("/v1/key/alpha-only/attributes", headers=b)
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json()["errorCode"] == unknown.json()["errorCode"] == 650
        assert hidden.json()["message"] == unknown.json()["message"].replace("never-existed", "alpha-only")
        for response in (http.post("/v1/synchronousSign", headers=b, json=sign_body("alpha-only")),
                         http.post("/v1/key/attributes", headers=b, json={"label": "alpha-only"}),
                         http.delete("/v1/key/alpha-only", headers=b),
                         http.post("/v1/key/deleteKey", headers=b, json={"label": "alpha-only"})):
            assert_tsb_error(response, 650, 404)
        assert http.get("/v1/key/alpha-only/attributes", headers=a).status_code == 200  # still there

        key_a = http.get("/v1/key/same-name/attributes", headers=a).json()["json"]["publicKey"]
        key_b = http.get("/v1/key/same-name/attributes", headers=b).json()["json"]["publicKey"]
        assert key_a != key_b
        attestation_a = http.get("/v1/key/attestation-key/attributes", headers=a).json()["json"]["publicKey"]
        attestation_b = http.get("/v1/key/attestation-key/attributes", headers=b).json()["json"]["publicKey"]
        assert attestation_a != attestation_b
        stats = http.get("/v1/keystore/statistics", headers=token("team-b", "service", sub="bob")).json()
        assert "partition=team-b" in stats["keyStoreStatistics"]

        api_key = {"X-API-KEY": ROLE_KEYS[Role.KEY_MANAGEMENT][0]}  # API keys: the settings partition
        assert "alpha-only" in http.get("/v1/key", headers=api_key).json()
        ghost = http.get("/v1/key", headers=token("ghost"))
        assert ghost.status_code == 403 and "alpha-only" not in ghost.text

    records_b = [r for r in server.app.state.audit.repository.records("team-b")]
    assert {r["principal"] for r in records_b} == {"bob"}
    assert all(r["partition"] == "team-b" for r in records_b)


def test_remove_refuses_a_soft_partition_with_keys_unless_purged(partition_cli: Cli, serve: Callable[..., LiveServer],
                                                                 tmp_path: Path, master_key: str) -> None:
    assert partition_cli("add", "team-b", "--backend", "soft").exit_code == 0
    server = serve(tmp_path / "data", master_key=master_key, **JWT_SETTINGS)
    with server.client() as http:
        assert http.post("/v1/key", headers=token("team-b"), json=ec_key_body("b-key")).status_code == 201
    server.__exit__(None, None, None)
    refused = partition_cli("remove", "team-b")
    assert refused.exit_code == 2 and "still holds 1 key" in refused.output
    purged = partition_cli("remove", "team-b", "--purge")
    assert purged.exit_code == 0 and "key(s) destroyed" in purged.output  # b-key and hsmgate's own keys
    assert partition_cli("add", "team-b", "--backend", "soft").exit_code == 0
    again = serve(tmp_path / "data", master_key=master_key, **JWT_SETTINGS)
    with again.client() as http:
        labels = http.get("/v1/key", headers=token("team-b")).json()
        assert "b-key" not in labels and "attestation-key" in labels



def test_remove_refuses_a_soft_partition_with_approvers_unless_purged(partition_cli: Cli,
                                                                     serve: Callable[..., LiveServer],
                                                                     tmp_path: Path, master_key: str) -> None:
    assert partition_cli("add", "team-c", "--backend", "soft").exit_code == 0
    server = serve(tmp_path / "data", master_key=master_key, **JWT_SETTINGS)
    managers = token("team-c", "approverKeyManagement")
    with server.client() as http:
        created = http.put("/v1/approverManagement/create", headers=managers, json={
            "approverName": "officer@example.com", "algorithm": "RSA", "backupPassword": "pw"})
        assert created.status_code == 200, created.text
    server.__exit__(None, None, None)
    refused = partition_cli("remove", "team-c")
    assert refused.exit_code == 2 and "still holds 1 approver(s)" in refused.output, refused.output
    assert partition_cli("remove", "team-c", "--purge").exit_code == 0
    assert partition_cli("add", "team-c", "--backend", "soft").exit_code == 0
    again = serve(tmp_path / "data", master_key=master_key, **JWT_SETTINGS)
    with again.client() as http:
        listed = http.get("/v1/approverManagement/onboarding/status", headers=managers).json()
        assert listed == {"onboarded": [], "pending": []}

@pytest.mark.pkcs11
def test_a_pkcs11_partition_beside_the_soft_one(partition_cli: Cli, serve: Callable[..., LiveServer],
                                               tmp_path: Path, master_key: str,
                                               softhsm_factory: Callable[[str], SoftHsmToken]) -> None:
    hsm = softhsm_factory("auth-partition")
    pin_file = tmp_path / "pin"
    pin_file.write_text(hsm.pin)
    wrong_pin = tmp_path / "wrong"
    wrong_pin.write_text("0000")
    refused = partition_cli("add", "hsm-b", "--backend", "pkcs11", "--module", hsm.module_path,
                            "--token-label", hsm.token_label, "--pin-file", str(wrong_pin))
    assert refused.exit_code == 2 and "cannot open the token" in refused.output
    added = partition_cli("add", "hsm-b", "--backend", "pkcs11", "--module", hsm.module_path,
                          "--token-label", hsm.token_label, "--pin-file", "-", input=hsm.pin + "\n")
    assert added.exit_code == 0, added.output
    server = serve(tmp_path / "data", master_key=master_key, **JWT_SETTINGS)
    with server.client() as http:
        assert http.post("/v1/key", headers=token("hsm-b"), json=ec_key_body("on-the-token")).status_code == 201
        signed = http.post("/v1/synchronousSign", headers=token("hsm-b"), json=sign_body("on-the-token"))
        assert signed.status_code == 200, signed.text
        assert "on-the-token" not in http.get("/v1/key", headers=token("default")).json()
        stats = http.get("/v1/keystore/statistics", headers=token("hsm-b", "service")).json()["keyStoreStatistics"]
        assert "backend=pkcs11" in stats
        assert http.delete("/v1/key/on-the-token", headers=token("hsm-b")).status_code == 200


def test_a_removed_partitions_audit_stays_verifiable(partition_cli: Cli, serve: Callable[..., LiveServer],
                                                     tmp_path: Path, master_key: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert partition_cli("add", "team-b", "--backend", "soft").exit_code == 0
    server = serve(tmp_path / "data", master_key=master_key, **JWT_SETTINGS)
    with server.client() as http:
        assert http.post("/v1/key", headers=token("team-b"), json=ec_key_body("b-key")).status_code == 201
    server.__exit__(None, None, None)  # shutdown signs a checkpoint of each chain
    assert partition_cli("remove", "team-b", "--purge").exit_code == 0
    result = CliRunner().invoke(cli, ["audit", "verify", "--partition", "team-b"])
    assert result.exit_code == 0, result.output
    assert "(1 signatures verified): OK" in result.output
