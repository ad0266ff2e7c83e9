"""In-process throughput of the soft token's derivation, BIP-340, BLS and LMS (no HTTP, one thread).

Run: .venv/bin/python bench/derivation.py [--seconds N]. Writes bench/results/derivation.md. Each
figure is operations per second over a timed loop of at least N seconds (default 3) on a soft
partition backed by SQLite in a temporary directory; an LMS signature includes its committed
one-time-key reservation (one SQLite transaction).
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from hsmgate.hsm.base import KeyAttributes, KeySpec, KeyType, SchnorrOptions, SignMechanism, SignScheme
from hsmgate.hsm.derivation import DerivationPath, DerivationScheme
from hsmgate.hsm.soft import SoftPartition
from hsmgate.store.database import Database
from hsmgate.store.soft_keys import SoftKeyRepository

RESULTS = Path(__file__).parent / "results" / "derivation.md"


def rate(call: Callable[[int], object], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call(done)
        done += 1
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    seconds = parser.parse_args().seconds
    with tempfile.TemporaryDirectory() as directory:
        db = Database(f"sqlite:///{Path(directory) / 'state.db'}")
        db.migrate()
        partition = SoftPartition("bench", repository=SoftKeyRepository(db, "bench"), master_key=secrets.token_bytes(32))
        sign = KeyAttributes(sign=True, verify=True, derive=True)
        rows: list[tuple[str, float]] = []
        for curve, name in (("1.3.132.0.10", "secp256k1"), ("1.2.840.10045.3.1.7", "P-256"), ("1.3.101.112", "Ed25519")):
            partition.import_seed(f"m-{name}", seed=bytes(range(32)), curve_oid=curve, scheme=DerivationScheme.SLIP10,
                                  attributes=sign)
            hardened = name == "Ed25519"
            step = (lambda i: f"{i}'") if hardened else str
            rows.append((f"temporary derivation, 5-step path ({name}), key name → public key",
                         rate(lambda i, n=name, s=step: partition.get(f"m-{n}/44'/0'/0'/0'/{s(i)}"), seconds)))
            rows.append((f"persisted derivation ({name}, POST /v1/derivedKey's backend call)",
                         rate(lambda i, n=name, h=hardened: partition.derive_key(
                             f"m-{n}", DerivationPath.parse(f"1'/{i}'" if h else f"1/{i}"), attributes=sign), seconds)))
        partition.generate("k1", KeySpec(KeyType.EC, curve_oid="1.3.132.0.10"), KeyAttributes(sign=True, verify=True))
        message = hashlib.sha256(b"bench").digest()
        rows.append(("BIP-340 sign (secp256k1, random aux)",
                     rate(lambda i: partition.sign_bip340("k1", [message], SchnorrOptions()), seconds)))
        rows.append(("BIP-340 sign with BIP-86 tweak (merkleRootData empty)",
                     rate(lambda i: partition.sign_bip340("k1", [message], SchnorrOptions(merkle_root=b"")), seconds)))
        signature = partition.sign_bip340("k1", [message], SchnorrOptions())[0]
        assert isinstance(signature, bytes)
        bip340 = SignMechanism(SignScheme.BIP340, None, True)
        rows.append(("BIP-340 verify", rate(lambda i: partition.verify("k1", bip340, message, signature), seconds)))
        partition.generate("bls", KeySpec(KeyType.BLS), KeyAttributes(sign=True, verify=True))
        bls = SignMechanism(SignScheme.BLS)
        rows.append(("BLS sign (py-ecc)", rate(lambda i: partition.sign("bls", bls, b"bench"), seconds)))
        bls_signature = partition.sign("bls", bls, b"bench")
        rows.append(("BLS verify (py-ecc)", rate(lambda i: partition.verify("bls", bls, b"bench", bls_signature), seconds)))
        lms = SignMechanism(SignScheme.HSS_LMS)
        started = time.perf_counter()
        partition.generate("lms", KeySpec(KeyType.LMS, size=10), KeyAttributes(sign=True, verify=True))
        rows.append(("LMS key generation, H10/W1 (1,024 one-time keys), keys per second", 1 / (time.perf_counter() - started)))
        rows.append(("LMS sign, H10/W1 (reservation committed first)",
                     rate(lambda i: partition.sign("lms", lms, f"m{i}".encode()), min(seconds, 2.0))))
        lms_signature = partition.sign("lms", lms, b"bench")
        rows.append(("LMS verify, H10/W1", rate(lambda i: partition.verify("lms", lms, b"bench", lms_signature), seconds)))
        partition.close()
        db.dispose()
    lines = [
        "# Derivation, BIP-340, BLS and LMS: in-process throughput",
        "",
        (f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/derivation.py --seconds {seconds:g}` on "
         f"{platform.machine()} ({platform.python_implementation()} {platform.python_version()}), one thread, soft token "
         "on SQLite, no HTTP. The machine has 2 cores shared with other work: take the figures as orders of magnitude."),
        "",
        "| operation | per second |",
        "|---|---:|",
        *(f"| {name} | {value:,.1f} |" for name, value in rows),
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
