"""``make bench`` (PKCS#11 rows): hsmgate's pkcs11 backend against its own token, and signing spread over many keys.

    .venv/bin/python bench/pkcs11_rows.py [--seconds 8] [--spread-keys 200] [--soft-spread-keys 20000]
                                          [--out bench/results]

One run, one machine, a fresh SoftHSM2 token (file object store) in a temp directory:

* **ceiling**: the token through python-pkcs11 alone: 2 processes, one logged-in session each, the key's
  handle found once, the same mechanism and payload hsmgate sends (``plan_signature``), for P-256 ECDSA SHA-256,
  Ed25519 and RSA-2048 PSS SHA-256;
* **hsmgate**: ``hsmgate serve --workers 2`` on the pkcs11 backend, audit on, POST /v1/synchronousSign with
  the same key, ``wrk -t1 -c64`` after a 2 s warm-up, right after the ceiling row of the same key;
* **spread, pkcs11**: one worker, audit on, P-256, ``wrk -c32``: one hot key, then round-robin over
  ``--spread-keys`` keys made on the token beforehand: a first pass (every request a key the worker has not
  seen: its look-up on the token), then the rest of the first pass, then the same keys again (warm);
* **spread, soft token** (``--soft-spread-keys``, 0 to skip): the same on the soft backend over 20,000 keys;
* key creation: POST /v1/key (P-256, audit on) with 8 client threads, on each backend;
* memory per key-cache entry: ``tracemalloc`` around describing ``--spread-keys`` keys in this process.

Writes ``<out>/<date>-pkcs11.md`` and ``.json`` with requests/s, p50/p99, CPU-s and peak RSS per process and
the load average before each row.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import datetime as dt
import gc
import hashlib
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # run.py's helpers; tests.softhsm

import run as common

from hsmgate.hsm.base import HashAlg, KeySpec, KeyType, SignMechanism, SignScheme
from hsmgate.hsm.pkcs11.signing import plan_signature
from tests.softhsm import SoftHsmToken, create_token

P256_OID = "1.2.840.10045.3.1.7"
#: hsmgate's mechanism and key spec of each row of run.py's CASES.
MECHANISMS = {
    "Ed25519": (SignMechanism(SignScheme.EDDSA), KeySpec(KeyType.ED, curve_oid="1.3.101.112")),
    "EC P-256": (SignMechanism(SignScheme.ECDSA, HashAlg.SHA256), KeySpec(KeyType.EC, curve_oid=P256_OID)),
    "RSA-2048": (SignMechanism(SignScheme.RSA_PSS, HashAlg.SHA256), KeySpec(KeyType.RSA, 2048)),
}
SPREAD_PREFIX = "spread-"
CREATE_BODY = {"algorithm": "EC", "curveOid": P256_OID}


# -- the token's own ceiling --------------------------------------------------------------------------
def _raw_worker(token: SoftHsmToken, label: str, mechanism: Any, param: bytes | None, payload: bytes,
                seconds: float, start_at: float) -> int:
    os.environ["SOFTHSM2_CONF"] = token.conf_path
    import pkcs11

    session = pkcs11.lib(token.module_path).get_token(token_label=token.token_label).open(user_pin=token.pin)
    key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=label)  # found once
    key.sign(payload, mechanism=mechanism, mechanism_param=param)
    while time.time() < start_at:
        time.sleep(0.001)
    count, end = 0, start_at + seconds
    while time.time() < end:
        for _ in range(10):
            key.sign(payload, mechanism=mechanism, mechanism_param=param)
        count += 10
    session.close()
    return count


def raw_ceiling(token: SoftHsmToken, mechanisms: frozenset[int], case: str, label: str, processes: int,
                seconds: float) -> dict[str, Any]:
    """Signatures/s of ``processes`` processes signing with python-pkcs11 alone, as hsmgate would sign."""
    mechanism, spec = MECHANISMS[case]
    plan = plan_signature(mechanisms, spec.key_type, mechanism)
    assert plan is not None and plan.encode is None, (case, plan)
    payload = hashlib.sha256(common.PAYLOAD).digest() if plan.hash_here else common.PAYLOAD
    start_at = time.time() + 3.0
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = [pool.submit(_raw_worker, token, label, plan.mechanism, plan.param, payload, seconds, start_at)
                for _ in range(processes)]
        counts = [run.result(timeout=seconds + 60) for run in runs]
    return {"signatures_per_s": round(sum(counts) / seconds, 1),
            "per_process": [round(c / seconds, 1) for c in counts], "mechanism": f"0x{int(plan.mechanism):X}"}


def token_mechanisms(token: SoftHsmToken) -> frozenset[int]:
    import pkcs11

    slot = pkcs11.lib(token.module_path).get_token(token_label=token.token_label).slot
    return frozenset(int(m) for m in slot.get_mechanisms())


# -- keys -------------------------------------------------------------------------------------------
def make_token_keys(token: SoftHsmToken, count: int) -> float:
    """``count`` P-256 key pairs labelled spread-00000... made on the token with python-pkcs11; keys/s."""
    import pkcs11
    from pkcs11 import Attribute
    from pkcs11.util.ec import encode_named_curve_parameters

    lib = pkcs11.lib(token.module_path)
    with lib.get_token(token_label=token.token_label).open(rw=True, user_pin=token.pin) as session:
        params = session.create_domain_parameters(
            pkcs11.KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        began = time.perf_counter()
        for index in range(count):
            params.generate_keypair(store=True, label=f"{SPREAD_PREFIX}{index:05d}", id=secrets.token_bytes(16),
                                    public_template={Attribute.VERIFY: True},
                                    private_template={Attribute.SIGN: True, Attribute.SENSITIVE: True,
                                                      Attribute.PRIVATE: True, Attribute.EXTRACTABLE: False})
        return count / (time.perf_counter() - began)


def make_soft_keys(settings_env: dict[str, str], count: int) -> float:
    """``count`` P-256 keys spread-00000... in the soft token of a server's data directory; keys/s."""
    from hsmgate.bootstrap import open_database, open_partition
    from hsmgate.hsm.base import KeyAttributes
    from hsmgate.settings import Settings

    saved = dict(os.environ)
    os.environ.update(settings_env)
    try:
        settings = Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    db = open_database(settings)
    partition = open_partition(settings, db)
    spec, attributes = KeySpec(KeyType.EC, curve_oid=P256_OID), KeyAttributes(sign=True, destroyable=True)
    began = time.perf_counter()
    for index in range(count):
        partition.generate(f"{SPREAD_PREFIX}{index:05d}", spec, attributes)
    rate = count / (time.perf_counter() - began)
    partition.close()
    db.dispose()
    return rate


def api_key_creation(url: str, count: int, threads: int = 8) -> float:
    """POST /v1/key (P-256) ``count`` times from ``threads`` client threads; keys/s."""
    run_id = secrets.token_hex(3)

    def create(index: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(index, count, threads):
                response = client.post("/v1/key", json={"label": f"made-{run_id}-{i}", "attributes": common.ATTRIBUTES,
                                                        **CREATE_BODY})
                response.raise_for_status()

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, range(threads)))
    return count / (time.perf_counter() - began)


def cache_costs(token: SoftHsmToken, count: int) -> tuple[float, float]:
    """(bytes of Python heap per key-cache entry of a P-256 key, by tracemalloc; ms per first use of a key
    in the backend: search and description, in this process with the token's ``count`` spread keys)."""
    from hsmgate.hsm.pkcs11 import Pkcs11Partition

    def open_partition() -> Pkcs11Partition:
        return Pkcs11Partition("bench", module_path=token.module_path, token_label=token.token_label,
                               pin=token.pin, pool_size=1, key_generation=lambda: 1, key_cache_size=count)

    partition = open_partition()
    began = time.perf_counter()
    for index in range(count):
        partition.get(f"{SPREAD_PREFIX}{index:05d}")
    first_use_ms = (time.perf_counter() - began) * 1000 / count
    partition.close()
    partition = open_partition()
    partition.get(f"{SPREAD_PREFIX}00000")
    tracemalloc.start()
    gc.collect()  # python-pkcs11 makes a class per key object: cycles, freed by the collector only
    before = tracemalloc.take_snapshot()
    for index in range(1, count):
        partition.get(f"{SPREAD_PREFIX}{index:05d}")
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    partition.close()
    return grown / (count - 1), first_use_ms


# -- rows -------------------------------------------------------------------------------------------
def sign_body(work: Path, name: str, label: str, algorithm: str) -> Path:
    path = work / f"{name}.json"
    path.write_text(json.dumps({"signRequest": {"payload": base64.b64encode(common.PAYLOAD).decode(),
                                                "signKeyName": label, "signatureAlgorithm": algorithm}}))
    return path


def spread(server: common.Hsmgate, work: Path, keys: int, seconds: int, connections: int) -> dict[str, Any]:
    """One hot key, then the first pass over ``keys`` keys, the rest of it, and a warm pass."""
    url = f"{server.url}/v1/synchronousSign"
    hot_label = f"{SPREAD_PREFIX}{keys - 1:05d}"
    rows: dict[str, Any] = {"keys": keys, "seconds": seconds}
    load = common.load1()
    rows["hot"] = {"load1": load, **common.measure(url, sign_body(work, "hot", hot_label, "SHA256_WITH_ECDSA"),
                                                   server.proc.pid, seconds=seconds, connections=connections)}
    template = sign_body(work, "spread", "@KEY@", "SHA256_WITH_ECDSA")
    os.environ.update({"WRK_KEYS": str(keys), "WRK_PREFIX": SPREAD_PREFIX, "WRK_START": "0"})
    try:
        pids = common.tree(server.proc.pid)
        before = {pid: common.cpu_seconds(pid) for pid in pids}
        load = common.load1()
        first = common.wrk(url, template, seconds=seconds, connections=connections)
        rows["first_pass"] = summary(first, pids, before, load) | {"new_keys": min(keys, first["requests"])}
        done = first["requests"]
        rest_began = time.monotonic()
        while done < keys:  # the rest of the first pass, not measured as a row
            os.environ["WRK_START"] = str(done)
            guess = max(2, min(120, int((keys - done) / max(rows["first_pass"]["requests_per_s"], 1)) + 1))
            done += common.wrk(url, template, seconds=guess, connections=connections)["requests"]
        rows["first_pass_rest_s"] = round(time.monotonic() - rest_began, 1)
        os.environ["WRK_START"] = "0"
        pids = common.tree(server.proc.pid)
        before = {pid: common.cpu_seconds(pid) for pid in pids}
        load = common.load1()
        rows["warm"] = summary(common.wrk(url, template, seconds=seconds, connections=connections), pids, before,
                               load)
    finally:
        for name in ("WRK_KEYS", "WRK_PREFIX", "WRK_START"):
            os.environ.pop(name, None)
    hot = rows["hot"]["requests_per_s"]
    rows["first_pass"]["vs_hot"] = common.ratio(rows["first_pass"]["requests_per_s"], hot)
    rows["warm"]["vs_hot"] = common.ratio(rows["warm"]["requests_per_s"], hot)
    return rows


def spread_rows(work: Path, master_key: str, env: dict[str, str], keys: int, seconds: int,
                servers: list[common.Hsmgate], made: tuple[float, str], api_keys: int) -> dict[str, Any]:
    """The spread rows on a one-worker server (audit on) of the backend ``env`` names, and the key creation
    rates; the server is stopped afterwards."""
    backend = env.get("HSMGATE_BACKEND", "soft")
    server = common.Hsmgate(work, 1, master_key, audit=True, extra_env=env, name=f"-{backend}-spread")
    servers.append(server)
    try:
        data = spread(server, work, keys, seconds, 32)
        data |= {"made_per_s": round(made[0], 1), "made_how": made[1],
                 "api_keys_per_s": round(api_key_creation(server.url, api_keys), 1)}
    finally:
        server.stop()
        servers.remove(server)
    print(f"{backend} spread over {keys}: hot {data['hot']['requests_per_s']:,.0f}, first pass "
          f"{data['first_pass']['requests_per_s']:,.0f}, warm {data['warm']['requests_per_s']:,.0f} sig/s", flush=True)
    return data


def summary(result: dict[str, Any], pids: list[int], before: dict[int, float], load: float) -> dict[str, Any]:
    seconds_run = result["duration_us"] / 1e6
    ok = result["requests"] - result["errors_status"]
    return {"requests_per_s": round(ok / seconds_run, 1), "p50_ms": round(result["p50_us"] / 1000, 2),
            "p99_ms": round(result["p99_us"] / 1000, 2), "requests": result["requests"],
            "errors": {k: v for k, v in result.items() if k.startswith("errors_") and v}, "load1": load,
            "processes": [{"pid": pid, "name": common.process_name(pid),
                           "cpu_s": round(common.cpu_seconds(pid) - before[pid], 2),
                           "peak_rss_mb": round(common.peak_rss_mb(pid), 1)} for pid in pids]}


# -- report -----------------------------------------------------------------------------------------
def procs(row: dict[str, Any], key: str) -> str:
    return common.fmt_processes(row.get("processes") or [], key) or "–"


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# hsmgate PKCS#11 benchmark, {report['date']}", "",
             f"Machine: {report['machine']}. SoftHSM2 {report['softhsm']} (file object store), fresh token. "
             f"hsmgate: `hsmgate serve --dev --workers N`, pkcs11 backend, audit on, SQLite state; wrk -t1 "
             f"-c{report['connections']} -d{report['seconds']}s after a 2 s warm-up (spread rows: -c32, no "
             "warm-up), 32-byte payload. Ceiling: python-pkcs11 alone, 2 processes, one session each, key handle "
             "found once, hsmgate's mechanism. load: 1-minute load average when the row started (2 cores, shared).",
             "", "## Single signatures: hsmgate (2 workers) against the token's ceiling (2 processes)", "",
             "operations: where a worker runs the token calls — the threadpool (the default) or its event loop "
             "(HSMGATE_PKCS11_INLINE=true, for a token that answers in well under a millisecond).", "",
             "| key | operations | mechanism | ceiling sig/s | hsmgate sig/s | ratio | p50 ms | p99 ms "
             "| CPU-s per busy process | peak RSS MB per process | load |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['key']} | {row.get('operations', 'threadpool')} | {row['mechanism']} | "
                     f"{row['ceiling']['signatures_per_s']:,.0f} | "
                     f"{row['signatures_per_s']:,.0f} | {row['vs_ceiling']} | {row['p50_ms']} | {row['p99_ms']} | "
                     f"{procs(row, 'cpu_s')} | {procs(row, 'peak_rss_mb')} | {row['load1']} |")
    for backend, data in report["spread"].items():
        lines += ["", f"## Spread over {data['keys']:,} keys, {backend} backend (1 worker, P-256, audit on, wrk -c32)",
                  "", "| pass | sig/s | vs hot key | p50 ms | p99 ms | CPU-s per busy process | peak RSS MB | load |",
                  "|---|---|---|---|---|---|---|---|"]
        first = data["first_pass"]
        for name, title in (("hot", "one hot key"),
                            ("first_pass", f"first {data['seconds']} s: {first['new_keys']:,} of "
                                           f"{first['requests']:,} requests with a key new to the worker"),
                            ("warm", "after warm-up (every key seen)")):
            row = data[name]
            lines.append(f"| {title} | {row['requests_per_s']:,.0f} | {row.get('vs_hot', 1.0)} | {row['p50_ms']} | "
                         f"{row['p99_ms']} | {procs(row, 'cpu_s')} | {procs(row, 'peak_rss_mb')} | "
                         f"{row['load1']} |")
        lines += ["", f"Rest of the first pass: {data['first_pass_rest_s']} s. Keys made beforehand at "
                      f"{data['made_per_s']:,.0f} keys/s ({data['made_how']}); POST /v1/key: "
                      f"{data['api_keys_per_s']:,.0f} keys/s (8 client threads, audit on)."]
    if report.get("cache_entry_bytes"):
        lines += ["", f"PKCS#11 key cache: {report['cache_entry_bytes']:,.0f} bytes of Python heap per entry (P-256 "
                      "key, tracemalloc over describing every spread key in one process); first use of a key in the "
                      f"backend (C_FindObjects, attributes, public key): {report['first_use_ms']} ms with "
                      f"{report['spread']['pkcs11']['keys']:,} key pairs on the token."]
    errors = [f"{r['key']}: {r['errors']}" for r in report["rows"] if r.get("errors")]
    errors += [f"spread {b} {n}: {d[n]['errors']}" for b, d in report["spread"].items()
               for n in ("hot", "first_pass", "warm") if d[n].get("errors")]
    if errors:
        lines += ["", "**Rows with errors:** " + "; ".join(errors)]
    lines += ["", f"Total time: {report['elapsed_s']:.0f} s. Load average (1/5/15 min) before: "
                  f"{' '.join(report['loadavg_before'])}, after: {' '.join(report['loadavg_after'])}."]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """Cores, CPU model, kernel and Python of this machine."""
    models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
              if line.startswith("model name")]
    model = models[0] if models else platform.machine()
    return f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, Python {platform.python_version()}"


def softhsm_version(token: SoftHsmToken) -> str:
    import pkcs11

    major, minor = pkcs11.lib(token.module_path).library_version
    return f"{major}.{minor}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ceiling-seconds", type=float, default=5)
    parser.add_argument("--spread-keys", type=int, default=200,
                        help="keys on the SoftHSM2 token for the pkcs11 spread rows (0: skip); SoftHSM2's file "
                             "store makes them at a few per second")
    parser.add_argument("--soft-spread-keys", type=int, default=20000, help="keys for the soft spread rows (0: skip)")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    began = time.monotonic()
    report: dict[str, Any] = {"date": dt.date.today().isoformat(), "machine": machine(), "rows": [], "spread": {},
                              "seconds": args.seconds, "connections": args.connections,
                              "loadavg_before": Path("/proc/loadavg").read_text().split()[:3]}
    work = Path(tempfile.mkdtemp(prefix="hsmgate-bench-pkcs11-"))
    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    servers: list[common.Hsmgate] = []
    try:
        token = create_token(work / "softhsm", "bench")
        report["softhsm"] = softhsm_version(token)
        env = {"HSMGATE_BACKEND": "pkcs11", "HSMGATE_PKCS11_MODULE": token.module_path,
               "HSMGATE_PKCS11_TOKEN_LABEL": token.token_label, "HSMGATE_PKCS11_PIN": token.pin,
               "SOFTHSM2_CONF": token.conf_path}
        mechanisms = token_mechanisms(token)
        # the default (operations in the threadpool) and HSMGATE_PKCS11_INLINE=true (on the event loop)
        variants = {"threadpool": common.Hsmgate(work, 2, master_key, audit=True, extra_env=env, name="-pkcs11"),
                    "inline": common.Hsmgate(work, 2, master_key, audit=True, name="-pkcs11-inline",
                                             extra_env={**env, "HSMGATE_PKCS11_INLINE": "true"})}
        servers.extend(variants.values())
        keys = variants["threadpool"].ensure_keys()
        bodies = {name: server.bodies(work, keys) for name, server in variants.items()}
        for case in ("EC P-256", "Ed25519", "RSA-2048"):
            label = keys[case][0]
            ceiling = raw_ceiling(token, mechanisms, case, label, 2, args.ceiling_seconds)
            mechanism = ceiling.pop("mechanism")
            for name, server in variants.items():
                load = common.load1()
                row = common.measure(f"{server.url}/v1/synchronousSign", bodies[name][(case, "single")],
                                     server.proc.pid, seconds=args.seconds, connections=args.connections)
                row.pop("wrk", None)
                report["rows"].append({"key": case, "operations": name, "mechanism": mechanism, "ceiling": ceiling,
                                       "vs_ceiling": common.ratio(row["signatures_per_s"], ceiling["signatures_per_s"]),
                                       "load1": load, **row})
                print(f"{case} ({name}): ceiling {ceiling['signatures_per_s']:,.0f} sig/s, hsmgate "
                      f"{row['signatures_per_s']:,.0f} sig/s (x{report['rows'][-1]['vs_ceiling']}), "
                      f"p99 {row['p99_ms']} ms, load {load}", flush=True)
        for server in variants.values():
            server.stop()
        servers.clear()

        if args.spread_keys:
            made = make_token_keys(token, args.spread_keys)
            report["spread"]["pkcs11"] = spread_rows(work, master_key, env, args.spread_keys, args.seconds, servers,
                                                     (made, "python-pkcs11 C_GenerateKeyPair, one session"), 40)
            with multiprocessing.get_context("spawn").Pool(1) as pool:  # a process of its own: a fresh module
                entry_bytes, first_use_ms = pool.apply(cache_costs, (token, args.spread_keys))
            report["cache_entry_bytes"], report["first_use_ms"] = round(entry_bytes, 1), round(first_use_ms, 2)

        if args.soft_spread_keys:
            data_dir = work / "hsmgate-data-soft-spread"
            data_dir.mkdir()
            soft_env = {"HSMGATE_MASTER_KEY": master_key, "HSMGATE_DATA_DIR": str(data_dir), "HSMGATE_DEV": "true"}
            made = make_soft_keys(soft_env, args.soft_spread_keys)
            report["spread"]["soft"] = spread_rows(work, master_key, {}, args.soft_spread_keys, args.seconds, servers,
                                                   (made, "SoftPartition.generate in one process"), 300)
    except KeyboardInterrupt:
        print("interrupted; stopping every process started", file=sys.stderr)
        return 130
    finally:
        for server in servers:
            server.stop()
        common.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    report["elapsed_s"] = round(time.monotonic() - began, 1)
    report["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{report['date']}-pkcs11"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {stem}.md and {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
