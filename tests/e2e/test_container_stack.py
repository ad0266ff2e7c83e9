"""The container image and compose stack (``Dockerfile``, ``compose.yaml``, ``deploy/``) for real, with
podman: the images built from a Debian base made with debootstrap, two hsmgate instances on one
SoftHSM2 token and one PostgreSQL behind HAProxy, the seed walkthrough through HAProxy checked with
the OpenSSL CLI, and one instance killed under a bounded signing load while the other keeps serving.

Needs root (debootstrap, rootful podman) and the Debian packages podman, runc and debootstrap (``make
system-deps``). The figures (image size, build and start times, requests failed during failover)
are printed: ``pytest -s tests/e2e/test_container_stack.py`` (``make test-container``).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.api.test_seed_walkthrough import HEADERS, SEED_CREATE_KEY, SEED_SIGN, der_to_pem, openssl
from tests.e2e.container_stack import (
    IMAGES,
    Stack,
    build_images,
    ensure_base_image,
    image_size,
    podman_env,
    run,
)
from tests.helpers import assert_tsb_error, free_port, unique

pytestmark = [pytest.mark.container, pytest.mark.subprocess, pytest.mark.slow]

#: The failover load: this many signatures through HAProxy from this many clients, and the instance
#: killed once this many have been answered.
LOAD_REQUESTS = 1500
LOAD_CLIENTS = 6
KILL_AFTER = 400
PAYLOAD = b"Payload"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The images built, the stack up and serving; its containers, network and volumes removed after."""
    env = podman_env(tmp_path_factory.mktemp("podman"))
    base_seconds = ensure_base_image(env)
    build_seconds = build_images(env)
    running = Stack.create(env, free_port(), free_port())
    try:
        start = time.monotonic()
        running.up()
        running.wait_serving()
        start_seconds = time.monotonic() - start
        print(f"\ncontainer stack: base image {base_seconds:.1f} s, images built in {build_seconds:.1f} s, "
              f"hsmgate image {image_size(env, IMAGES['HSMGATE_IMAGE'][0]) / 1e6:.0f} MB, stack serving "
              f"{start_seconds:.1f} s after `podman-compose up`")
        yield running
    finally:
        running.down()


def create_seed_key(stack: Stack) -> tuple[str, httpx.Response]:
    label = unique("REST-API_Tutorial")
    with stack.client("KEY_MANAGEMENT") as http:
        created = http.post("/v1/key", content=SEED_CREATE_KEY.replace("<keyname>", label), headers=HEADERS)
    assert created.status_code == 201, created.text
    return label, created


def seed_sign(http: httpx.Client, label: str) -> httpx.Response:
    return http.post("/v1/synchronousSign", content=SEED_SIGN.replace("<keyname>", label), headers=HEADERS)


def test_image_runs_as_non_root_with_a_read_only_root_and_a_health_check(stack: Stack) -> None:
    running = stack
    for service in ("hsmgate-1", "hsmgate-2"):
        name = running.container(service)
        info = running.inspect(name)
        assert info["HostConfig"]["ReadonlyRootfs"] is True  # type: ignore[index]
        assert info["Config"]["Healthcheck"]["Test"][-1] == "/usr/local/bin/hsmgate-healthcheck"  # type: ignore[index]
        assert run(["podman", "exec", name, "id", "-u"], running.env).stdout.strip() == "10001"
        written = run(["podman", "exec", name, "touch", "/opt/hsmgate/written"], running.env, check=False)
        assert written.returncode != 0 and "Read-only file system" in written.stderr, written
        # the image's HEALTHCHECK, run by podman (no systemd timer runs it on these machines)
        health = run(["podman", "healthcheck", "run", name], running.env, check=False)
        assert health.returncode == 0, health.stdout + health.stderr
    config = run(["podman", "image", "inspect", "--format", "{{.Config.User}}", IMAGES["HSMGATE_IMAGE"][0]],
                 running.env).stdout.strip()
    assert config == "hsmgate"


def test_health_check_fails_when_nothing_serves(stack: Stack) -> None:
    running = stack
    probe = run(["podman", "run", "--rm", "--entrypoint", "/usr/bin/python3", IMAGES["HSMGATE_IMAGE"][0],
                 "/usr/local/bin/hsmgate-healthcheck"], running.env, check=False)
    assert probe.returncode == 1, probe
    assert "hsmgate health check:" in probe.stderr


def test_seed_walkthrough_through_haproxy_verifies_with_openssl(stack: Stack, tmp_path: Path) -> None:
    running = stack
    label, created = create_seed_key(running)
    public_pem = der_to_pem(created.json()["json"]["publicKey"], tmp_path, "pub")
    (tmp_path / "data").write_bytes(PAYLOAD)
    # four signatures: HAProxy's round robin sends them to both instances, which share the token
    with running.client("KEY_OPERATION") as http:
        signatures = [seed_sign(http, label) for _ in range(4)]
    for index, signed in enumerate(signatures):
        assert signed.status_code == 200, signed.text
        (tmp_path / f"sig{index}").write_bytes(base64.b64decode(signed.json()["signature"]))
        result = openssl("dgst", "-sha224", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:28",
                         "-sigopt", "rsa_mgf1_md:sha224", "-verify", public_pem, "-signature", f"sig{index}",
                         "data", cwd=tmp_path)
        assert result.returncode == 0 and "Verified OK" in result.stdout, result.stdout + result.stderr
    # a key-operation API key may not create keys: the TSB error comes through HAProxy unchanged
    with running.client("KEY_OPERATION") as http:
        refused = http.post("/v1/key", content=SEED_CREATE_KEY.replace("<keyname>", unique("refused")),
                            headers=HEADERS)
    assert_tsb_error(refused, 631, 401)


def test_one_instance_killed_under_signing_load_the_other_serves(stack: Stack) -> None:
    running = stack
    label, created = create_seed_key(running)
    public_key = serialization.load_der_public_key(base64.b64decode(created.json()["json"]["publicKey"]))
    assert isinstance(public_key, rsa.RSAPublicKey)
    answered = 0
    lock = threading.Lock()
    kill_now = threading.Event()
    outcomes: list[tuple[float, int | str, bytes | None, float]] = []  # (time, status or error, signature, seconds)
    next_index = iter(range(LOAD_REQUESTS))

    def client_loop() -> None:
        nonlocal answered
        with running.client("KEY_OPERATION") as http:
            while True:
                with lock:
                    if next(next_index, None) is None:
                        return
                sent = time.monotonic()
                try:
                    response = seed_sign(http, label)
                    outcome: tuple[float, int | str, bytes | None, float] = (
                        time.monotonic(), response.status_code,
                        base64.b64decode(response.json()["signature"]) if response.status_code == 200 else None,
                        time.monotonic() - sent)
                except (httpx.HTTPError, ValueError) as exc:
                    outcome = (time.monotonic(), type(exc).__name__, None, time.monotonic() - sent)
                with lock:
                    outcomes.append(outcome)
                    answered += 1
                    if answered == KILL_AFTER:
                        kill_now.set()

    start = time.monotonic()
    with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
        futures = [pool.submit(client_loop) for _ in range(LOAD_CLIENTS)]
        assert kill_now.wait(120), "the load did not reach the kill point"
        killed_at = time.monotonic()
        run(["podman", "kill", running.container("hsmgate-1")], running.env)
        for future in futures:
            future.result()
    elapsed = time.monotonic() - start

    failed = [outcome for outcome in outcomes if outcome[1] != 200]
    after_kill = [outcome for outcome in outcomes if outcome[0] > killed_at]
    slowest = max(outcome[3] for outcome in outcomes)
    counters = running.backend_stats()["BACKEND"]
    print(f"\nfailover: {len(outcomes)} signatures in {elapsed:.1f} s from {LOAD_CLIENTS} clients, hsmgate-1 "
          f"killed after {KILL_AFTER}; {len(failed)} failed ({sorted({str(o[1]) for o in failed})}); "
          f"{len(after_kill)} answered after the kill; slowest answer {slowest:.2f} s; HAProxy: {running.backend_states()}, "
          + ", ".join(f"{name} {counters[name]}" for name in ("wretr", "wredis", "eresp", "srv_abrt", "econ")))
    assert len(outcomes) == LOAD_REQUESTS
    assert len(after_kill) >= LOAD_REQUESTS - KILL_AFTER - LOAD_CLIENTS
    # HAProxy replays what the killed instance had not answered; a request whose answer was cut off
    # midway (HAProxy counts it as aborted by the server) is not replayed: at most the requests in
    # flight at the kill, all within a second of it, and all cut connections, not error answers
    assert len(failed) <= LOAD_CLIENTS, (failed, running.haproxy_log_unanswered()[-20:])
    assert all(outcome[1] == "RemoteProtocolError" and killed_at <= outcome[0] <= killed_at + 1
               for outcome in failed), failed
    # nobody waited for a lock the killed instance held in PostgreSQL (deploy/postgres/entrypoint.sh)
    assert slowest < 10, slowest
    # every signature is a valid RSA-PSS SHA-224 signature of the payload (checked by cryptography)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA224()), salt_length=28)
    for _, status, signature, _ in outcomes:
        if status != 200:
            continue
        assert signature is not None
        try:
            public_key.verify(signature, PAYLOAD, pss, hashes.SHA224())
        except InvalidSignature:
            pytest.fail("a signature from the stack does not verify")
    # the killed instance stays down, HAProxy has taken it out, the other one serves
    state = running.inspect(running.container("hsmgate-1"))["State"]
    assert state["Running"] is False  # type: ignore[index]
    assert running.backend_states() == {"hsmgate-1": "DOWN", "hsmgate-2": "UP"}
    with running.client("KEY_OPERATION") as http:
        assert seed_sign(http, label).status_code == 200
