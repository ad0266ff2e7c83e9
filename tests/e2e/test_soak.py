"""Soak: 200,000 mixed requests against ``hsmgate serve --workers 2`` (soft token, SQLite state, audit
on) with wrk on loopback — Ed25519 and P-256 signatures, verification, sign batches of 10, key
attributes, random — after a warm-up of 10,000. No request may fail, and no worker's resident
memory (VmRSS) may grow by 10 % or more from the end of the warm-up to the end. Signatures of a
sample are checked with ``cryptography`` before and after, the audit chain (a record per request,
one per batch item) with ``hsmgate audit verify``; the figures are printed (``-s``).
``make soak`` runs it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.load import audit_verify, cpu_seconds, vm_rss_kib
from tests.helpers import ServeProcess, unique

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("soak.lua")
WARM_UP = 10_000
SOAK = 200_000
#: wrk threads and connections (the machine has two cores, shared with the server's two workers)
THREADS, CONNECTIONS = 2, 64
#: bounds of each wrk run, in seconds: it stops after its request count, or at the latest then
WRK_SECONDS = {WARM_UP: 60, SOAK: 360}
MAX_GROWTH = 0.10

ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
              "modifiable": True, "destroyable": True}
ED25519 = {"algorithm": "ED", "curveOid": "1.3.101.112"}
P256 = {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def create(http: httpx.Client, spec: dict[str, Any]) -> tuple[str, Any]:
    label = unique("soak")
    response = http.post("/v1/key", json={"label": label, **spec, "attributes": ATTRIBUTES})
    assert response.status_code == 201, response.text
    return label, serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))


def sign_item(label: str, algorithm: str, payload: bytes) -> dict[str, str]:
    return {"payload": b64(payload), "signKeyName": label, "signatureAlgorithm": algorithm}


def check_signatures(http: httpx.Client, ed: tuple[str, Any], p256: tuple[str, Any], count: int) -> None:
    """``count`` signatures of each key, and a batch, verified here with ``cryptography``."""
    for n in range(count):
        payload = f"check {n}".encode()
        for (label, public), algorithm in ((ed, "EDDSA"), (p256, "SHA256_WITH_ECDSA")):
            response = http.post("/v1/synchronousSign", json={"signRequest": sign_item(label, algorithm, payload)})
            assert response.status_code == 200, response.text
            signature = base64.b64decode(response.json()["signature"])
            if algorithm == "EDDSA":
                public.verify(signature, payload)
            else:
                public.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    items = [sign_item(ed[0], "EDDSA", f"batch {n}".encode()) for n in range(10)]
    response = http.post("/v1/synchronousSignBatch", json={"signRequests": items})
    assert response.status_code == 200, response.text
    for n, result in enumerate(response.json()["results"]):
        ed[1].verify(base64.b64decode(result["signature"]), f"batch {n}".encode())


#: The mix, per 20 requests (cheap requests more often than the ones that cost a worker several
#: signatures: a batch is 10, key attributes carry an attestation signed with the RSA attestation key).
MIX = {"sign Ed25519": 8, "sign P-256": 4, "verify": 4, "sign batch of 10": 1, "key attributes": 1, "random": 2}
#: Audit records of one round of the mix: one per request (a batch of one key is one record listing its items).
RECORDS_PER_ROUND = sum(MIX.values())


def request_lines(http: httpx.Client, ed: tuple[str, Any], p256: tuple[str, Any], rounds: int = 8) -> list[str]:
    """:data:`MIX` ``rounds`` times, interleaved, one "METHOD<TAB>PATH<TAB>BODY" line per request,
    each with a payload of its own."""
    order = [kind for turn in range(max(MIX.values())) for kind, weight in MIX.items() if turn < weight]
    lines = []
    for n, kind in enumerate(order * rounds):
        payload = os.urandom(32 + n % 64)
        if kind == "sign Ed25519":
            request = ("POST", "/v1/synchronousSign", {"signRequest": sign_item(ed[0], "EDDSA", payload)})
        elif kind == "sign P-256":
            request = ("POST", "/v1/synchronousSign", {"signRequest": sign_item(p256[0], "SHA256_WITH_ECDSA", payload)})
        elif kind == "verify":
            signed = http.post("/v1/synchronousSign", json={"signRequest": sign_item(ed[0], "EDDSA", payload)})
            assert signed.status_code == 200, signed.text
            ed[1].verify(base64.b64decode(signed.json()["signature"]), payload)
            request = ("POST", "/v1/verify", {"verifySignatureRequest": {**sign_item(ed[0], "EDDSA", payload),
                                                                         "signature": signed.json()["signature"]}})
        elif kind == "sign batch of 10":
            request = ("POST", "/v1/synchronousSignBatch", {"signRequests": [
                sign_item(*((ed[0], "EDDSA") if i % 2 else (p256[0], "SHA256_WITH_ECDSA")), payload + bytes([i]))
                for i in range(10)]})
        elif kind == "key attributes":
            request = ("POST", "/v1/key/attributes", {"label": ed[0] if n % 2 else p256[0]})
        else:
            request = ("GET", f"/v1/generateRandom/{16 + n % 48}", None)
        method, path, body = request
        lines.append(f"{method}\t{path}\t{json.dumps(body, separators=(',', ':')) if body else ''}")
    return lines


def wrk(url: str, requests_file: Path, total: int) -> dict[str, Any]:
    """wrk with soak.lua until ``total`` answers (each thread its share; then SIGINT, on which wrk
    reports and exits) or its time bound, whichever comes first."""
    done = requests_file.with_name(f"done-{total}")
    env = {**os.environ, "SOAK_REQUESTS": str(requests_file), "SOAK_LIMIT": str(total // THREADS),
           "SOAK_DONE": str(done)}
    proc = subprocess.Popen(["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{WRK_SECONDS[total]}s",
                             "--timeout", "10s", "-s", str(SCRIPT), url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        while proc.poll() is None:
            if all(done.with_name(f"{done.name}.{n}").exists() for n in range(1, THREADS + 1)):
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=WRK_SECONDS[total] + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stdout + stderr
    line = next((line for line in stdout.splitlines() if line.startswith("SOAKJSON ")), None)
    assert line is not None, stdout + stderr
    return json.loads(line.removeprefix("SOAKJSON "))


def errors(figures: dict[str, Any]) -> int:
    return sum(figures[f"errors_{kind}"] for kind in ("connect", "read", "write", "status", "timeout")) + figures["bad"]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make system-deps)")
def test_soak_of_mixed_requests_without_errors_or_memory_growth(tmp_path: Path) -> None:
    env = {"HSMGATE_MASTER_KEY": b64(os.urandom(32)), "HSMGATE_AUDIT_ENABLED": "true"}
    server = ServeProcess(tmp_path, "soak", env, workers=2)
    try:
        server.wait_ready()
        workers = server.workers()
        assert len(workers) == 2, workers
        with server.client() as http:
            ed, p256 = create(http, ED25519), create(http, P256)
            requests_file = tmp_path / "requests.tsv"
            requests_file.write_text("\n".join(request_lines(http, ed, p256)) + "\n")
            started = time.monotonic()
            warm = wrk(server.url, requests_file, WARM_UP)
            rss_warm = {pid: vm_rss_kib(pid) for pid in workers}
            cpu_warm = sum(cpu_seconds(pid) for pid in workers)
            soak = wrk(server.url, requests_file, SOAK)
            rss_end = {pid: vm_rss_kib(pid) for pid in workers}
            cpu = sum(cpu_seconds(pid) for pid in workers) - cpu_warm
            elapsed = time.monotonic() - started
            check_signatures(http, ed, p256, 20)
        assert server.workers() == workers, "a worker was restarted"
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log.read_text()[-4000:]
    verified = audit_verify(server.data_dir, env)
    counted = re.search(r"partition default: (\d+) records", verified.stdout)
    records = int(counted.group(1)) if counted else 0

    print(f"\nSoak: warm-up {warm['requests']} requests, then {soak['requests']} in "
          f"{soak['duration_us'] / 1e6:.1f} s ({soak['requests'] / (soak['duration_us'] / 1e6):.0f} req/s), "
          f"{elapsed:.1f} s in all; errors: warm-up {errors(warm)}, soak {errors(soak)}")
    print(f"  latency p50 {soak['p50_us'] / 1000:.1f} ms, p99 {soak['p99_us'] / 1000:.1f} ms, "
          f"max {soak['max_us'] / 1000:.0f} ms; workers' CPU {cpu:.1f} s, {cpu / soak['requests'] * 1000:.2f} ms "
          f"a request; machine load average {os.getloadavg()[0]:.1f}")
    for pid in workers:
        growth = (rss_end[pid] - rss_warm[pid]) / rss_warm[pid]
        print(f"  worker {pid}: VmRSS {rss_warm[pid] / 1024:.1f} MiB after warm-up, {rss_end[pid] / 1024:.1f} MiB "
              f"at the end ({growth:+.1%})")
    print(f"  audit verify: exit {verified.returncode}: {verified.stdout.strip()}")
    for figures in (warm, soak):
        assert errors(figures) == 0, figures
    assert soak["requests"] >= SOAK, soak
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # every answered request has its record (an unanswered one, cut off by SIGINT, may have one too)
    assert records >= (warm["requests"] + soak["requests"]) * RECORDS_PER_ROUND // sum(MIX.values()), records
    for pid in workers:
        assert rss_end[pid] < rss_warm[pid] * (1 + MAX_GROWTH), (pid, rss_warm[pid], rss_end[pid])
