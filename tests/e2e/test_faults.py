"""Faults a gateway must survive, injected under a bounded signing load over real processes: the state
database's connections killed (PostgreSQL), the PKCS#11 token gone, the SQLite data directory's disk
full. Each test checks that every answer is a valid signature or a clean 5xx TSB error (no hang past
the client's timeout, no dropped connection, no non-JSON 500), that service comes back without a
restart, and that every acknowledged signature has its audit record in a chain `hsmgate audit verify`
accepts. The figures (requests, failures by kind, recovery) are printed: ``pytest -s`` or ``-rP``.
"""

from __future__ import annotations

import base64
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hsmgate.hsm.pkcs11.partition import REINIT_INTERVAL
from tests.e2e.load import (
    Outcome,
    SignLoad,
    Verifier,
    audit_records,
    audit_verify,
    kinds,
    latencies,
    recoveries,
)
from tests.helpers import ServeProcess, unique
from tests.postgres import allow_connections, database_name, fresh_database, terminate_connections
from tests.softhsm import create_token, softhsm_available, token_directory

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

SIGN_ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
                   "modifiable": True, "destroyable": True}
ED25519 = {"algorithm": "ED", "curveOid": "1.3.101.112"}
P256 = {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"}


def create_key(http: httpx.Client, spec: dict[str, Any]) -> tuple[str, Any]:
    label = unique("fault")
    response = http.post("/v1/key", json={"label": label, **spec, "attributes": SIGN_ATTRIBUTES})
    assert response.status_code == 201, response.text
    return label, serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))


def ed25519_verifier(public: Ed25519PublicKey) -> Verifier:
    return lambda signature, payload: public.verify(signature, payload)


def ecdsa_verifier(public: ec.EllipticCurvePublicKey) -> Verifier:
    return lambda signature, payload: public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))


def clean_failure(kind: str, codes: set[int]) -> bool:
    """A 5xx answer with a TSB error body whose code is one of ``codes``."""
    status, _, code = kind.partition("/")
    return status.isdigit() and int(status) >= 500 and code.isdigit() and int(code) in codes


def report(title: str, outcomes: list[Outcome], lines: list[str], expected: set[int]) -> None:
    counted = kinds(outcomes)
    print(f"\n{title}: {len(outcomes)} requests, {counted.pop('ok', 0)} ok, failures {dict(counted) or 'none'}")
    print(f"  {latencies(outcomes)}")
    for line in lines:
        print(f"  {line}")
    wrong = [o for o in outcomes if not o.ok and not clean_failure(o.kind, expected)]
    for outcome in wrong[:10]:
        print(f"  WRONG: {outcome.kind} sent at {outcome.started:.3f} s, answered at {outcome.ended:.3f} s "
              f"({outcome.request_id}): {outcome.detail}")


def assert_acknowledged_are_audited(outcomes: list[Outcome], records: list[dict[str, Any]]) -> tuple[int, int]:
    """Every request answered 200 has its ``synchronousSign`` record with outcome ``ok`` (found by its
    X-Request-ID); returns (acknowledged, such records)."""
    audited = {r["request_id"] for r in records if r["operation"] == "synchronousSign" and r["outcome"] == "ok"}
    acknowledged = {o.request_id for o in outcomes if o.ok}
    missing = acknowledged - audited
    assert not missing, f"{len(missing)} acknowledged signatures without their audit record, e.g. {sorted(missing)[:5]}"
    return len(acknowledged), len(audited)


def run_faults(load: SignLoad, schedule: list[tuple[float, str, Callable[[], None]]]) -> list[tuple[str, float, float]]:
    """Run each ``(at, name, inject)`` of ``schedule`` ``at`` seconds into the load; returns the faults
    as (name, start, end) in load-relative seconds (``inject`` returns when the fault is over)."""
    faults = []
    for at, name, inject in schedule:
        time.sleep(max(0.0, at - (time.monotonic() - load.t0)))
        start = time.monotonic() - load.t0
        inject()
        faults.append((name, start, time.monotonic() - load.t0))
    return faults


# ------------------------------------------------------------------------------ PostgreSQL connections killed
@pytest.mark.postgres
def test_postgresql_connections_killed_during_a_signing_load(tmp_path: Path) -> None:
    """``serve --workers 2`` on PostgreSQL, 8 clients signing for 12 s: every connection of the
    database is terminated twice, then the database refuses connections for 1.5 s (terminated again
    every 0.25 s). Answers are signatures or 503 TSB errors; service is whole within seconds of each
    fault, on the same workers; every acknowledged signature is in a verifiable audit chain."""
    with fresh_database("hsmgate_faults") as url:
        database = database_name(url)
        env = {"HSMGATE_DATABASE_URL": url, "HSMGATE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
               "HSMGATE_AUDIT_ENABLED": "true"}
        server = ServeProcess(tmp_path, "pg", env, workers=2)
        try:
            server.wait_ready()
            workers = server.workers()
            with server.client() as http:
                label, public = create_key(http, ED25519)
            load = SignLoad(server.url, label, "EDDSA", ed25519_verifier(public), clients=8, seconds=12.0,
                            timeout=10.0, max_requests=60_000).start()
            terminated: list[int] = []

            def outage() -> None:
                allow_connections(database, False)
                try:
                    deadline = time.monotonic() + 1.5
                    while time.monotonic() < deadline:
                        terminated.append(terminate_connections(database))
                        time.sleep(0.25)
                finally:
                    allow_connections(database, True)

            try:
                faults = run_faults(load, [
                    (2.0, "terminate every connection", lambda: terminated.append(terminate_connections(database))),
                    (4.5, "terminate every connection", lambda: terminated.append(terminate_connections(database))),
                    (7.0, "refuse connections for 1.5 s", outage),
                ])
            finally:
                outcomes = load.join()
                allow_connections(database, True)
            assert server.proc.poll() is None and server.workers() == workers, "a worker was restarted"
            with server.client() as http:  # still serving after the load, no restart
                assert http.post("/v1/synchronousSign", json={"signRequest": {
                    "payload": "AA==", "signKeyName": label, "signatureAlgorithm": "EDDSA"}}).status_code == 200
        finally:
            server.stop()
        assert server.proc.returncode == 0, server.log.read_text()[-4000:]

        found = recoveries(outcomes, faults)
        records = audit_records(server.data_dir, env, tmp_path / "audit.jsonl")
        acknowledged, audited = assert_acknowledged_are_audited(outcomes, records)
        verified = audit_verify(server.data_dir, env)
        report("PostgreSQL connections killed", outcomes, [
            f"connections terminated per kill: {terminated}",
            *(r.line() for r in found),
            f"acknowledged signatures {acknowledged}, synchronousSign ok records {audited}",
            f"audit verify: exit {verified.returncode}: {verified.stdout.strip()}",
        f"server log: {server.log.read_text().count('Traceback')} tracebacks",
        ], {703})

        wrong = {kind: n for kind, n in kinds(outcomes).items() if kind != "ok" and not clean_failure(kind, {703})}
        assert not wrong, f"answers a gateway must not give: {wrong}"
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert sum(terminated) > 0
        for recovery in found:
            assert recovery.recovery < 5.0, recovery.line()
        tail = [o for o in outcomes if o.started > faults[-1][2] + 1.0]  # the load's last 2 s or so
        assert len(tail) > 100 and all(o.ok for o in tail), kinds(tail)


# ------------------------------------------------------------------------------------- PKCS#11 token removed
@pytest.mark.pkcs11
@pytest.mark.skipif(not softhsm_available(), reason="SoftHSM2 is not installed")
def test_pkcs11_token_removed_during_a_signing_load(tmp_path: Path) -> None:
    """``serve --workers 2`` on a SoftHSM2 token (SQLite state, audit on), 8 clients signing with a
    P-256 key on the token for 12 s: the token's directory is moved away twice (2 s, then 1 s), as a
    token pulled out. Answers are signatures or 503 / 701; each outage ends within the module's
    re-initialisation interval of the token coming back; every acknowledged signature is audited
    and the chain verifies (its checkpoints signed by the attestation key on the token)."""
    token = create_token(tmp_path / "softhsm", "faults", export=False)
    directory = token_directory(token)
    parked = tmp_path / "parked-token"
    env = {"HSMGATE_BACKEND": "pkcs11", "HSMGATE_PKCS11_MODULE": token.module_path,
           "HSMGATE_PKCS11_TOKEN_LABEL": token.token_label, "HSMGATE_PKCS11_PIN": token.pin,
           "SOFTHSM2_CONF": token.conf_path, "HSMGATE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
           "HSMGATE_AUDIT_ENABLED": "true"}
    server = ServeProcess(tmp_path, "pkcs11", env, workers=2)

    def removed(seconds: float) -> Callable[[], None]:
        def inject() -> None:
            shutil.move(directory, parked)
            try:
                time.sleep(seconds)
            finally:
                shutil.move(parked, directory)
        return inject

    try:
        server.wait_ready()
        workers = server.workers()
        with server.client() as http:
            label, public = create_key(http, P256)
        load = SignLoad(server.url, label, "SHA256_WITH_ECDSA", ecdsa_verifier(public), clients=8, seconds=12.0,
                        timeout=10.0, max_requests=60_000).start()
        try:
            faults = run_faults(load, [(3.0, "token removed for 2 s", removed(2.0)),
                                       (8.0, "token removed for 1 s", removed(1.0))])
        finally:
            outcomes = load.join()
            if parked.exists():
                shutil.move(parked, directory)
        assert server.proc.poll() is None and server.workers() == workers, "a worker was restarted"
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log.read_text()[-4000:]

    found = recoveries(outcomes, faults)
    records = audit_records(server.data_dir, env, tmp_path / "audit.jsonl")
    acknowledged, audited = assert_acknowledged_are_audited(outcomes, records)
    verified = audit_verify(server.data_dir, env)
    report("PKCS#11 token removed", outcomes, [
        *(r.line() for r in found),
        f"acknowledged signatures {acknowledged}, synchronousSign ok records {audited}",
        f"audit verify: exit {verified.returncode}: {verified.stdout.strip()}",
    f"server log: {server.log.read_text().count('Traceback')} tracebacks",
    ], {701})

    wrong = {kind: n for kind, n in kinds(outcomes).items() if kind != "ok" and not clean_failure(kind, {701})}
    assert not wrong, f"answers a gateway must not give: {wrong}"
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for recovery in found:
        assert recovery.failures > 0, f"the token's removal went unnoticed: {recovery.line()}"
        assert recovery.recovery < REINIT_INTERVAL + 3.0, recovery.line()
    tail = [o for o in outcomes if o.started > faults[-1][2] + REINIT_INTERVAL + 1.0]
    assert len(tail) > 50 and all(o.ok for o in tail), kinds(tail)


# ------------------------------------------------------------------------------ disk full under SQLite state
TMPFS_SIZE = "32m"


@contextmanager
def small_filesystem(mountpoint: Path) -> Iterator[None]:
    """A tmpfs of :data:`TMPFS_SIZE` at ``mountpoint`` (skips when this sandbox cannot mount one),
    unmounted afterwards."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (mount -t tmpfs); this test runs as uid "
                    f"{os.geteuid()}")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(mountpoint)],
                            capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: mount -t tmpfs exited {result.returncode}: "
                    f"{result.stderr.strip()}")
    try:
        yield
    finally:
        for _ in range(50):  # the server's files may still be closing
            if subprocess.run(["umount", str(mountpoint)], capture_output=True, timeout=30,
                              check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=30, check=False)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until its file system is full; returns the bytes written."""
    written = 0
    chunk = bytes(64 * 1024)
    with open(path, "wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        for size in (4096, 512, 1):  # the last partial blocks
            try:
                while True:
                    written += handle.write(bytes(size))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return written


def test_disk_full_under_the_sqlite_data_dir(tmp_path: Path) -> None:
    """``serve --workers 2`` with its data directory (SQLite state, WAL, anchor file) on a 32 MiB tmpfs,
    8 clients signing for 12 s: at 3 s a file takes all the space left for 3 s. Operations fail
    closed with 503 / 703 (no signature without its committed record), service resumes once the
    file is removed, every acknowledged signature has its record and the chain verifies."""
    data_dir = tmp_path / "small"
    with small_filesystem(data_dir):
        env = {"HSMGATE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(), "HSMGATE_AUDIT_ENABLED": "true"}
        server = ServeProcess(tmp_path, "disk-full", env, workers=2, data_dir=data_dir)
        filler = data_dir / "filler"
        filled: list[int] = []

        def disk_full() -> None:
            filled.append(fill(filler))
            try:
                time.sleep(3.0)
            finally:
                filler.unlink()

        try:
            server.wait_ready()
            workers = server.workers()
            with server.client() as http:
                label, public = create_key(http, ED25519)
            load = SignLoad(server.url, label, "EDDSA", ed25519_verifier(public), clients=8, seconds=12.0,
                            timeout=10.0, max_requests=30_000).start()
            try:
                faults = run_faults(load, [(3.0, "disk full for 3 s", disk_full)])
            finally:
                outcomes = load.join()
                filler.unlink(missing_ok=True)
            assert server.proc.poll() is None and server.workers() == workers, "a worker was restarted"
            usage = shutil.disk_usage(data_dir)
        finally:
            server.stop()
        assert server.proc.returncode == 0, server.log.read_text()[-4000:]

        found = recoveries(outcomes, faults)
        records = audit_records(data_dir, env, tmp_path / "audit.jsonl")
        acknowledged, audited = assert_acknowledged_are_audited(outcomes, records)
        verified = audit_verify(data_dir, env)
    report("Disk full (SQLite data dir on a tmpfs)", outcomes, [
        f"tmpfs {TMPFS_SIZE}: filler of {filled[0] / 2**20:.1f} MiB left {usage.free / 2**20:.1f} MiB free after",
        *(r.line() for r in found),
        f"acknowledged signatures {acknowledged}, synchronousSign ok records {audited}",
        f"audit verify: exit {verified.returncode}: {verified.stdout.strip()}",
        f"server log: {server.log.read_text().count('Traceback')} tracebacks",
    ], {703})

    wrong = {kind: n for kind, n in kinds(outcomes).items() if kind != "ok" and not clean_failure(kind, {703})}
    assert not wrong, f"answers a gateway must not give: {wrong}"
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert found[0].failures > 0, f"the full disk went unnoticed: {found[0].line()}"
    assert found[0].recovery < 5.0, found[0].line()
    tail = [o for o in outcomes if o.started > faults[-1][2] + 1.0]
    assert len(tail) > 100 and all(o.ok for o in tail), kinds(tail)
