"""Results of SKA requests at rest (domain/ska/results.py): sealed in the database — the raw row
and the database files hold no plaintext of a decrypted secret — fetchable while EXECUTED,
erased by DELETE and after the retention, refused when tampered with, and sealed at start-up when
an older hsmgate stored them in plaintext."""

from __future__ import annotations

import base64
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import SecretStr
from sqlalchemy import text

from hsmgate.domain.clock import ManualClock
from tests.helpers import assert_tsb_error, b64, soft_settings, unique
from tests.domain.ska.helpers import (
    Approver,
    ClockServer,
    approve,
    clock_server,
    create_key,
    policy,
    rule,
    sign_request,
    status,
    token,
)
from tests.softhsm import SoftHsmToken

SECRET = b"the launch code is 0000-1111-2222"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockServer]:
    with clock_server(tmp_path_factory.mktemp("ska-results"), ManualClock(), ska_result_retention=3600) as live:
        yield live


@pytest.fixture(scope="module")
def http(server: ClockServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def raw_result(server: ClockServer, request_id: str) -> str | None:
    """The ``result`` column of the request's row, as stored."""
    with server.app.state.db.engine.connect() as connection:
        return connection.execute(text("SELECT result FROM ska_requests WHERE id = :id"),
                                  {"id": request_id}).scalar_one()


def set_raw_result(server: ClockServer, request_id: str, value: str | None) -> None:
    """What someone with write access to the database can do."""
    with server.app.state.db.engine.begin() as connection:
        connection.execute(text("UPDATE ska_requests SET result = :value WHERE id = :id"),
                           {"value": value, "id": request_id})


def executed_decrypt(http: httpx.Client, clock: ManualClock, secret: bytes = SECRET) -> str:
    """An RSA key whose use needs one approval; a decrypt request of ``secret``, approved."""
    approver = Approver("ed25519")
    label = unique("sealed-decrypt")
    created = http.post("/v1/key", json={"label": label, "algorithm": "RSA", "keySize": 2048, "attributes": {
        "sign": False, "decrypt": True, "unwrap": False}, "policy": policy(rule(token((1, [approver]), timeout=600)))})
    assert created.status_code == 201, created.text
    public = serialization.load_der_public_key(base64.b64decode(created.json()["json"]["publicKey"]))
    assert isinstance(public, rsa.RSAPublicKey)
    ciphertext = public.encrypt(secret, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    request = http.post("/v1/decrypt", json={"decryptRequest": {
        "encryptedPayload": b64(ciphertext), "decryptKeyName": label, "cipherAlgorithm": "RSA_PADDING_OAEP_WITH_SHA256"}})
    assert request.status_code == 201, request.text
    request_id = str(request.json()["decryptRequestId"])
    assert approve(http, approver, clock, request_id, kind="Decrypt").status_code == 200
    return request_id


def test_a_decrypted_secret_is_not_stored_in_plaintext(server: ClockServer, http: httpx.Client) -> None:
    request_id = executed_decrypt(http, server.clock)
    done = status(http, request_id)
    assert done["status"] == "EXECUTED" and base64.b64decode(done["result"]) == SECRET
    stored = raw_result(server, request_id)
    assert stored is not None and stored.startswith("sealed:v1:"), stored
    assert b64(SECRET) not in stored and "launch code" not in stored
    # nor anywhere in the database files (the database, its write-ahead log)
    data_dir = server.settings.data_dir
    for path in data_dir.glob("state.db*"):
        content = path.read_bytes()
        assert SECRET not in content and b64(SECRET).encode() not in content, path
    assert status(http, request_id)["result"] == done["result"]  # fetchable again: TSB clients poll


def test_every_kind_of_result_is_sealed(server: ClockServer, http: httpx.Client) -> None:
    label = unique("sealed-sign")
    create_key(http, label, None)
    request_id = sign_request(http, label)  # a key without policy: executed at once
    assert status(http, request_id)["result"]
    assert (raw_result(server, request_id) or "").startswith("sealed:v1:")


def test_delete_erases_the_result_of_an_executed_request(server: ClockServer, http: httpx.Client) -> None:
    request_id = executed_decrypt(http, server.clock)
    assert http.delete(f"/v1/request/{request_id}").status_code == 200
    erased = status(http, request_id)
    assert erased["status"] == "EXECUTED" and erased["result"] is None
    assert raw_result(server, request_id) is None
    assert http.delete(f"/v1/request/{request_id}").status_code == 200  # idempotent


def test_results_are_erased_after_the_retention(server: ClockServer, http: httpx.Client) -> None:
    request_id = executed_decrypt(http, server.clock)
    server.clock.advance(3500)
    time.sleep(0.5)  # a few scheduler passes
    assert status(http, request_id)["result"] is not None
    server.clock.advance(200)  # 3700 s after execution; the retention is 3600 s
    deadline = time.monotonic() + 10
    while raw_result(server, request_id) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert raw_result(server, request_id) is None
    assert status(http, request_id)["result"] is None


def test_a_planted_or_moved_result_is_refused(server: ClockServer, http: httpx.Client) -> None:
    first, second = executed_decrypt(http, server.clock), executed_decrypt(http, server.clock, b"other")
    set_raw_result(server, second, raw_result(server, first))  # sealed for another request
    body = assert_tsb_error(http.get(f"/v1/request/{second}"), 1, 500)
    assert "does not open" in body["message"]
    set_raw_result(server, second, b64(b"planted signature"))  # plaintext, as before sealing
    assert_tsb_error(http.get(f"/v1/request/{second}"), 1, 500)
    listed = http.post("/v1/filteredRequests", json={"requestStatusList": ["EXECUTED"]})
    assert listed.status_code == 200, listed.text  # the list still answers, without that result
    by_id = {r["id"]: r for r in listed.json()["requests"]}
    assert by_id[second]["result"] is None and base64.b64decode(by_id[first]["result"]) == SECRET


def test_plaintext_results_of_an_older_version_are_sealed_at_start(tmp_path: Path) -> None:
    settings = soft_settings(tmp_path / "data", ska_scheduler_interval=0.1)
    with clock_server(tmp_path, settings=settings) as first, first.client() as http:
        label = unique("legacy")
        create_key(http, label, None)
        request_id = sign_request(http, label)
        result = status(http, request_id)["result"]
        set_raw_result(first, request_id, result)  # as an older hsmgate stored it
    with clock_server(tmp_path, settings=settings) as second, second.client() as http:
        stored = raw_result(second, request_id)
        assert stored is not None and stored.startswith("sealed:v1:") and result not in stored
        assert status(http, request_id)["result"] == result


@pytest.mark.pkcs11
def test_results_are_sealed_with_the_pkcs11_backend_too(
        tmp_path: Path, softhsm_factory: Callable[[str], SoftHsmToken]) -> None:
    """PKCS#11 has no soft-token master key: hsmgate's own master.key (created 0600) keys the sealing."""
    hsm = softhsm_factory("results-token")
    data_dir = tmp_path / "data"
    settings = soft_settings(data_dir, backend="pkcs11", pkcs11_module=hsm.module_path,
                             pkcs11_token_label=hsm.token_label, pkcs11_pin=SecretStr(hsm.pin), master_key=None,
                             ska_scheduler_interval=0.1)
    with clock_server(tmp_path, settings=settings) as live, live.client() as http:
        label = unique("hsm-sealed")
        create_key(http, label, None)
        request_id = sign_request(http, label)
        assert status(http, request_id)["result"]
        assert (raw_result(live, request_id) or "").startswith("sealed:v1:")
    assert stat.S_IMODE((data_dir / "master.key").stat().st_mode) == 0o600
