"""Sign throughput through Pkcs11Partition: 1 thread, 2 threads, 2 processes.

    .venv/bin/python bench/pkcs11_sign.py [--seconds 3] [--module PATH --token LABEL --pin PIN]

Without ``--module`` it makes a throwaway SoftHSM2 token in a temp directory. Each process opens its own
partition after it starts (as a server worker would); all workers start together and sign the same
64-byte message for the given time. The "raw" column is python-pkcs11 alone on the same session with a
key object looked up once (no pool, no label lookup, no error mapping): the partition's overhead baseline.
"""

from __future__ import annotations

import argparse
import faulthandler
import hashlib
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.softhsm

from hsmgate.hsm.base import HashAlg, KeyAttributes, KeySpec, KeyType, SignMechanism, SignScheme
from hsmgate.hsm.pkcs11 import Pkcs11Partition

CASES = {
    "RSA-2048 PSS SHA-256": (KeySpec(KeyType.RSA, 2048), SignMechanism(SignScheme.RSA_PSS, HashAlg.SHA256)),
    "ECDSA P-256 SHA-256": (KeySpec(KeyType.EC, curve_oid="1.2.840.10045.3.1.7"),
                            SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)),
    "Ed25519": (KeySpec(KeyType.ED, curve_oid="1.3.101.112"), SignMechanism(SignScheme.EDDSA)),
}
MESSAGE = os.urandom(64)


def sign_loop(partition: Pkcs11Partition, label: str, mechanism: SignMechanism, seconds: float) -> int:
    count, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        partition.sign(label, mechanism, MESSAGE)
        count += 1
    return count


def raw_python_pkcs11(partition: Pkcs11Partition, label: str, mechanism: SignMechanism,
                      seconds: float) -> float:
    """One thread signing through python-pkcs11 directly, with the partition's planned mechanism."""
    from pkcs11 import ObjectClass

    from hsmgate.hsm.pkcs11.signing import plan_signature

    lease = partition._checkout()
    try:
        key = lease.session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)  # found once
        plan = plan_signature(partition._mechanisms, partition.get(label).key_type, mechanism)
        assert plan is not None and plan.encode is None
        payload = hashlib.sha256(MESSAGE).digest() if plan.hash_here else MESSAGE
        count, stop = 0, time.perf_counter() + seconds
        while time.perf_counter() < stop:
            key.sign(payload, mechanism=plan.mechanism, mechanism_param=plan.param)
            count += 1
        return count / seconds
    finally:
        partition._checkin(lease, healthy=True)


def threads(partition: Pkcs11Partition, label: str, mechanism: SignMechanism, n: int,
            seconds: float) -> float:
    counts = [0] * n

    def work(i: int) -> None:
        counts[i] = sign_loop(partition, label, mechanism, seconds)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


def process_worker(config: dict[str, Any], label: str, mechanism: SignMechanism, seconds: float,
                   ready: Any, start: Any, results: Any) -> None:
    faulthandler.dump_traceback_later(seconds + 120, exit=True)  # a stuck worker says where, then ends
    partition = Pkcs11Partition("bench", **config)
    partition.sign(label, mechanism, MESSAGE)  # warm up
    ready.put(True)
    start.wait()
    results.put(sign_loop(partition, label, mechanism, seconds))
    partition.close()


def processes(config: dict[str, Any], label: str, mechanism: SignMechanism, n: int, seconds: float) -> float:
    context = multiprocessing.get_context("spawn")
    ready, results, start = context.Queue(), context.Queue(), context.Event()
    workers = [context.Process(target=process_worker, args=(config, label, mechanism, seconds, ready, start,
                                                            results)) for _ in range(n)]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            ready.get(timeout=60)
        start.set()
        total = sum(results.get(timeout=seconds + 60) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--module")
    parser.add_argument("--token")
    parser.add_argument("--pin")
    args = parser.parse_args()
    if args.module:
        config = {"module_path": args.module, "token_label": args.token, "pin": args.pin}
    else:
        from tests.softhsm import create_token

        token = create_token(Path(tempfile.mkdtemp(prefix="hsmgate-bench-")), "bench")
        config = {"module_path": token.module_path, "token_label": token.token_label, "pin": token.pin}
    partition = Pkcs11Partition("bench", **config)
    print(f"module {config['module_path']}, OS locking: {partition._module.os_locking}, "
          f"{args.seconds:g} s per cell")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'signature':<22} {'raw 1 thr':>10} {'1 thread':>10} {'2 threads':>10} {'2 processes':>12}"
          "   (signatures/s)")
    attributes = KeyAttributes(sign=True, verify=True, destroyable=True)
    for name, (spec, mechanism) in CASES.items():
        label = f"bench-{spec.key_type}-{os.getpid()}"
        partition.generate(label, spec, attributes)
        try:
            partition.sign(label, mechanism, MESSAGE)
            raw = raw_python_pkcs11(partition, label, mechanism, args.seconds)
            one = threads(partition, label, mechanism, 1, args.seconds)
            two = threads(partition, label, mechanism, 2, args.seconds)
            procs = processes(config, label, mechanism, 2, args.seconds)
            print(f"{name:<22} {raw:>10.0f} {one:>10.0f} {two:>10.0f} {procs:>12.0f}", flush=True)
        finally:
            partition.delete(label)
    partition.close()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
