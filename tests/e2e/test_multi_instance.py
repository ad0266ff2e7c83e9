"""Several hsmgate processes sharing one state database and one soft-token master key, as behind a
load balancer: real ``python -m hsmgate serve`` subprocesses on their own ports, on SQLite and on
PostgreSQL. Also ``serve --workers 2``: one address, two worker processes, connections spread over
both, a dead worker replaced."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.helpers import DATABASES, ServeProcess, assert_tsb_error, unique
from tests.postgres import fresh_database
from tests.softhsm import SoftHsmToken

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
              "modifiable": True, "destroyable": True}


@pytest.fixture(params=DATABASES)
def shared_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """One database and one master key for every instance of a test."""
    master_key = base64.b64encode(os.urandom(32)).decode()
    if request.param == "sqlite":
        yield {"HSMGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}", "HSMGATE_MASTER_KEY": master_key}
    else:
        with fresh_database() as url:
            yield {"HSMGATE_DATABASE_URL": url, "HSMGATE_MASTER_KEY": master_key}


@pytest.fixture()
def two_instances(shared_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """Two instances started at the same moment on a fresh database (they race to migrate it and to
    create the attestation key)."""
    a, b = ServeProcess(tmp_path, "a", shared_env), ServeProcess(tmp_path, "b", shared_env)
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop()
        b.stop()


def create_ed25519(client: httpx.Client) -> tuple[str, Any]:
    label = unique("multi")
    response = client.post("/v1/key", json={"label": label, "algorithm": "ED", "curveOid": "1.3.101.112",
                                            "attributes": ATTRIBUTES})
    assert response.status_code == 201, response.text
    return label, serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))


def sign(client: httpx.Client, label: str, payload: bytes = b"payload") -> httpx.Response:
    return client.post("/v1/synchronousSign", json={"signRequest": {
        "payload": base64.b64encode(payload).decode(), "signKeyName": label, "signatureAlgorithm": "EDDSA"}})


def test_a_key_created_on_one_instance_signs_on_the_other_at_once(two_instances: tuple[ServeProcess, ServeProcess]) -> None:
    a, b = two_instances
    with a.client() as on_a, b.client() as on_b:
        attestation_a = on_a.get("/v1/key/attestation-key/attributes").json()["json"]["publicKey"]
        assert on_b.get("/v1/key/attestation-key/attributes").json()["json"]["publicKey"] == attestation_a
        assert sign(on_b, unique("not-yet")).status_code == 404  # a miss on B is not remembered
        label, public = create_ed25519(on_a)
        response = sign(on_b, label)
        assert response.status_code == 200, response.text
        public.verify(base64.b64decode(response.json()["signature"]), b"payload")
        assert label in on_b.get("/v1/key").json()
        assert on_b.get(f"/v1/key/{label}/attributes").json()["json"]["publicKey"] == \
            on_a.get(f"/v1/key/{label}/attributes").json()["json"]["publicKey"]


def refused_on(client: httpx.Client, label: str, status: int, *, postgresql: bool,
               password: str | None = None) -> httpx.Response:
    """The first sign of ``label`` answered with ``status``: the very next request on SQLite; on
    PostgreSQL within 2 s (another instance learns of a key change by notification)."""
    deadline = time.monotonic() + (2 if postgresql else 0)
    while True:
        response = client.post("/v1/synchronousSign", json={"signRequest": {
            "payload": base64.b64encode(b"payload").decode(), "signKeyName": label, "signatureAlgorithm": "EDDSA",
            "keyPassword": password}})
        if response.status_code == status or time.monotonic() >= deadline:
            return response
        time.sleep(0.005)


def warm(client: httpx.Client, label: str) -> None:
    """Sign twice, 0.3 s apart: the instance has cached the key and its metadata, trusted on its
    key generation token (on PostgreSQL its listener is in sync by then)."""
    assert sign(client, label).status_code == 200
    time.sleep(0.3)
    assert sign(client, label).status_code == 200


def test_a_key_deleted_on_one_instance_is_refused_by_the_other_at_once(
        two_instances: tuple[ServeProcess, ServeProcess], shared_env: dict[str, str]) -> None:
    a, b = two_instances
    postgresql = shared_env["HSMGATE_DATABASE_URL"].startswith("postgresql")
    with a.client() as on_a, b.client() as on_b:
        label, _ = create_ed25519(on_a)
        warm(on_b, label)  # B has unsealed and cached the key
        assert on_a.delete(f"/v1/key/{label}").status_code == 200
        response = refused_on(on_b, label, 404, postgresql=postgresql)
        assert_tsb_error(response, 650, 404)


def test_a_password_set_on_one_instance_is_required_by_the_other(
        two_instances: tuple[ServeProcess, ServeProcess], shared_env: dict[str, str]) -> None:
    a, b = two_instances
    postgresql = shared_env["HSMGATE_DATABASE_URL"].startswith("postgresql")
    with a.client() as on_a, b.client() as on_b:
        label, _ = create_ed25519(on_a)
        warm(on_b, label)  # B remembers that the key has no password
        changed = on_a.post("/v1/key/changePassword", json={"label": label, "newPassword": "pw-on-a"})
        assert changed.status_code == 200, changed.text
        response = refused_on(on_b, label, 400, postgresql=postgresql)
        assert_tsb_error(response, 620, 400)
        assert refused_on(on_b, label, 200, postgresql=False, password="pw-on-a").status_code == 200


def _established_connections(pid: int, port: int) -> int:
    """Sockets of ``pid`` that are established connections to local ``port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "01" and fields[9] in inodes:
            count += 1
    return count


def test_workers_share_one_address_and_a_dead_worker_is_replaced(tmp_path: Path) -> None:
    env = {"HSMGATE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode()}
    server = ServeProcess(tmp_path, "workers", env, workers=2)
    clients: list[httpx.Client] = []
    try:
        server.wait_ready()
        workers = server.workers()
        assert len(workers) == 2, workers
        with server.client() as client:
            label, public = create_ed25519(client)
        for _ in range(32):  # 32 keep-alive connections, kept open
            connection = httpx.Client(base_url=server.url, timeout=30)
            response = sign(connection, label)
            assert response.status_code == 200
            public.verify(base64.b64decode(response.json()["signature"]), b"payload")
            clients.append(connection)
        spread = [_established_connections(pid, server.port) for pid in workers]
        assert sum(spread) == 32 and min(spread) >= 4, f"connections per worker: {spread}"

        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replaced = server.workers()
            if len(replaced) == 2 and workers[0] not in replaced:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"worker not replaced: {server.workers()}")
        ok = 0
        for _ in range(20):  # new connections reach the replacement too (queued ones are not lost)
            with server.client() as client:
                response = sign(client, label)
                ok += response.status_code == 200
        assert ok == 20
    finally:
        for connection in clients:
            connection.close()
        server.stop()
    assert server.proc.returncode == 0, server.log.read_text()[-3000:]


@pytest.mark.pkcs11
@pytest.mark.postgres
def test_instances_starting_at_once_on_one_pkcs11_token_make_one_attestation_key(
        softhsm_factory: Callable[[str], SoftHsmToken], tmp_path: Path) -> None:
    """Three instances start together on a fresh token and database (as compose.yaml's do): the token
    then holds one attestation key, not one per instance (a token accepts duplicate labels; the
    starts take turns: ``Database.start_up_lock``). Counted by pkcs11-tool, not by hsmgate."""
    token = softhsm_factory(unique("race")[:32])
    with fresh_database() as url:
        env = {"HSMGATE_DATABASE_URL": url, "HSMGATE_BACKEND": "pkcs11", "SOFTHSM2_CONF": token.conf_path,
               "HSMGATE_PKCS11_MODULE": token.module_path, "HSMGATE_PKCS11_TOKEN_LABEL": token.token_label,
               "HSMGATE_PKCS11_PIN": token.pin}
        instances = [ServeProcess(tmp_path, name, env) for name in ("a", "b", "c")]
        try:
            for instance in instances:
                instance.wait_ready()
            attestation = set()
            for instance in instances:
                with instance.client() as http:
                    attestation.add(http.get("/v1/key/attestation-key/attributes").json()["json"]["publicKey"])
        finally:
            for instance in instances:
                instance.stop()
    assert len(attestation) == 1
    listing = subprocess.run(
        ["pkcs11-tool", "--module", token.module_path, "--token-label", token.token_label, "--login",
         "--pin", token.pin, "--list-objects", "--type", "privkey"],
        capture_output=True, text=True, timeout=60, check=True, env={**os.environ, "SOFTHSM2_CONF": token.conf_path})
    assert listing.stdout.count("label:      attestation-key\n") == 1, listing.stdout
