"""A large file through ``hsmgate serve``: encrypted, then decrypted, both streamed from and to disk
by the client, with the server process's peak resident memory (VmHWM) read from /proc. Used by
``tests/e2e/test_file_encryption_memory.py`` and ``bench/file_encryption.py``."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from tests.helpers import ServeProcess
from tests.softhsm import create_token

MIB = 1024 * 1024
ATTRIBUTES = {"decrypt": True, "derive": True, "sign": False, "unwrap": False}


@dataclass(frozen=True)
class FileFigures:
    """What one run measured (sizes in bytes, times in seconds, memory in KiB)."""

    backend: str
    plain_bytes: int
    container_bytes: int
    encrypt_seconds: float
    decrypt_seconds: float
    server_rss_before_kib: int
    server_peak_rss_kib: int
    round_trip_equal: bool


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def _server_pid(server: ServeProcess) -> int:
    workers = server.workers()
    return workers[0] if workers else server.proc.pid


def _random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        block = os.urandom(MIB)  # one random MiB, each copy changed by its index: incompressible enough
        index = 0
        while left:
            piece = (index.to_bytes(8, "big") + block[8:])[:min(left, MIB)]
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
            index += 1
    return digest.hexdigest()


def _post_to_file(client: httpx.Client, path: str, part: str, document: dict[str, object], source: Path,
                  target: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with open(source, "rb") as upload, client.stream("POST", path, files={
            part: (None, json.dumps(document), "application/json"), "file": (source.name, upload)}) as response:
        if response.status_code != 200:
            response.read()
            raise AssertionError(f"{path}: {response.status_code} {response.text}")
        length = int(response.headers["content-length"])
        with open(target, "wb") as out:
            out.writelines(response.iter_bytes(MIB))
    return time.perf_counter() - start, length


def run(directory: Path, size: int, backend: str = "soft") -> FileFigures:
    """Encrypt and decrypt a ``size``-byte file through a fresh server in ``directory``."""
    env: dict[str, str] = {}
    if backend == "pkcs11":
        token = create_token(directory / "softhsm", "file-stream")
        env = {"HSMGATE_BACKEND": "pkcs11", "HSMGATE_PKCS11_MODULE": token.module_path,
               "HSMGATE_PKCS11_TOKEN_LABEL": token.token_label, "HSMGATE_PKCS11_PIN": token.pin,
               "SOFTHSM2_CONF": token.conf_path}
    server = ServeProcess(directory, "file-stream", env)
    try:
        server.wait_ready()
        with server.client(timeout=600) as client:
            created = client.post("/v1/key", json={"label": "big-file", "algorithm": "EC",
                                                   "curveOid": "1.3.132.0.34", "attributes": ATTRIBUTES})
            assert created.status_code == 201, created.text
            pid = _server_pid(server)
            before = _status_kib(pid, "VmRSS")
            plain, sealed, opened = directory / "plain.bin", directory / "plain.bin.encrypted", directory / "opened"
            digest = _random_file(plain, size)
            encrypt_seconds, container = _post_to_file(
                client, "/v1/fileEncrypt", "SignedFileEncryptRequestDto",
                {"fileEncryptRequest": {"encryptKeyName": "big-file"}}, plain, sealed)
            decrypt_seconds, _ = _post_to_file(
                client, "/v1/synchronousFileDecrypt", "SignedFileDecryptRequestDto",
                {"fileDecryptRequest": {"decryptKeyName": "big-file"}}, sealed, opened)
            peak = _status_kib(pid, "VmHWM")
        equal = sealed.stat().st_size == container and _sha256(opened) == digest
        for path in (plain, sealed, opened):
            path.unlink()
        return FileFigures(backend, size, container, encrypt_seconds, decrypt_seconds, before, peak, equal)
    finally:
        server.stop()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while piece := source.read(MIB):
            digest.update(piece)
    return digest.hexdigest()


def figures_json(figures: FileFigures) -> str:
    return json.dumps(asdict(figures))
