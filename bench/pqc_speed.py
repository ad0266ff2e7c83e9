"""Post-quantum sign / verify (and ML-KEM encapsulate / decapsulate) throughput of the soft token.

    .venv/bin/python bench/pqc_speed.py [--seconds 2] [--threads 1] [--only ML-DSA-65,...] [--markdown]

Calls go through ``SoftPartition`` exactly as the API makes them (key cached after the first use,
64-byte message, no HTTP). Each operation runs for ``--seconds`` per thread or at least 3 times, so
the slow SLH-DSA *s sets still give a figure. ``cryptography`` (ML-DSA, ML-KEM-768/1024) releases
the GIL; ``pqcrypto`` (SLH-DSA, ML-KEM-512) does not, so extra threads do not help those sets.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hsmgate.hsm import softpq
from hsmgate.hsm.base import KeyAttributes, KeySpec, KeyType, SignMechanism, SignScheme
from hsmgate.hsm.soft import SoftPartition
from hsmgate.store.database import Database
from hsmgate.store.soft_keys import SoftKeyRepository

MESSAGE = bytes(range(64))


def rate(operation: Callable[[], object], seconds: float, threads: int) -> float:
    """Operations per second over all threads."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        start.wait()
        began = time.perf_counter()
        while True:
            operation()
            counts[index] += 1
            if counts[index] >= 3 and time.perf_counter() - began >= seconds:
                break

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in workers:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated parameter sets")
    parser.add_argument("--markdown", action="store_true", help="print a README table")
    args = parser.parse_args()
    wanted = [KeyType(n) for n in args.only.split(",") if n] or list(softpq.PARAMETER_SETS)

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        token = SoftPartition("bench", repository=SoftKeyRepository(db, "bench"), master_key=secrets.token_bytes(32))
        rows: list[tuple[str, str, float, float, int]] = []
        for key_type in wanted:
            params = softpq.PARAMETER_SETS[key_type]
            began = time.perf_counter()
            info = token.generate(key_type.value, KeySpec(key_type), KeyAttributes(sign=True, decrypt=True))
            keygen = time.perf_counter() - began
            if params.family == "ML-KEM":
                ciphertext, _ = softpq.encapsulate(key_type, info.public_key or b"")
                public = info.public_key or b""
                first = rate(lambda k=key_type, p=public: softpq.encapsulate(k, p), args.seconds, args.threads)
                second = rate(lambda k=key_type, c=ciphertext: token.decapsulate(k.value, c), args.seconds,
                              args.threads)
                rows.append((key_type.value, "encaps / decaps", first, second, len(ciphertext)))
            else:
                mechanism = SignMechanism(SignScheme.ML_DSA if params.family == "ML-DSA" else SignScheme.SLH_DSA)
                signature = token.sign(key_type.value, mechanism, MESSAGE)
                first = rate(lambda k=key_type, m=mechanism: token.sign(k.value, m, MESSAGE), args.seconds,
                             args.threads)
                second = rate(lambda k=key_type, m=mechanism, s=signature: token.verify(k.value, m, MESSAGE, s),
                              args.seconds, args.threads)
                rows.append((key_type.value, "sign / verify", first, second, len(signature)))
            print(f"{key_type.value:20} {rows[-1][1]:16} {first:10.1f} {second:10.1f}/s   "
                  f"{rows[-1][4]:6} B   keygen {keygen * 1000:7.1f} ms   ({params.library})", flush=True)
        token.close()
        db.dispose()

    load = os.getloadavg()[0]
    print(f"\n{args.threads} thread(s), {args.seconds:g} s per figure, load average {load:.2f} "
          f"on {os.cpu_count()} cores")
    if args.markdown:
        print("\n| parameter set | library | operation | ops/s (1st / 2nd) | signature / ciphertext |")
        print("|---|---|---|---|---|")
        for name, kind, first, second, size in rows:
            library = softpq.PARAMETER_SETS[KeyType(name)].library
            print(f"| `{name}` | {library} | {kind} | {first:,.1f} / {second:,.0f} | {size} B |")


if __name__ == "__main__":
    main()
