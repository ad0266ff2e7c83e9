"""A/B benchmark of two hsmgate source trees on this machine, in one sitting.

    .venv/bin/python bench/ab.py --before /path/to/old/checkout [--after .] [--seconds 8] [--rounds 2]

Both versions serve at once (``hsmgate serve --dev --workers 2``, soft token, SQLite state), each
from its own source tree (``PYTHONPATH=<tree>/src``), and every row is measured alternately —
before, after, after, before, … — so that both see the same machine load. Rows: Ed25519, EC P-256
and RSA-2048 (PSS) signatures, single requests and batches of 100, audit off; and Ed25519 single
requests with the audit chain on (the default). Writes ``<out>/<date>-ab.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py: servers, wrk, process accounting)

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the old version")
    parser.add_argument("--after", type=Path, default=ROOT, help="checkout of the new version (default: this one)")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each version per row")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    work = Path(tempfile.mkdtemp(prefix="hsmgate-ab-"))
    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    opts = {"seconds": args.seconds, "connections": args.connections}
    rows: list[dict[str, Any]] = []
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    try:
        for audit in (False, True):
            servers = {name: run.Hsmgate(work, 2, master_key, audit=audit, name=f"-{name}-{audit}",
                                         extra_env={"PYTHONPATH": str(tree / "src")})
                       for name, tree in trees.items()}
            bodies = {name: server.bodies(work, server.ensure_keys()) for name, server in servers.items()}
            cases = [(c.name, m) for c in run.CASES for m in ("single", "batch")] if not audit else \
                [("Ed25519", "single"), ("Ed25519", "batch")]
            for key, mode in cases:
                path = "/v1/synchronousSign" if mode == "single" else "/v1/synchronousSignBatch"
                per_request = run.BATCH if mode == "batch" else 1
                order = [("before", "after")[(i + i // 2) % 2] for i in range(2 * args.rounds)]  # A B B A …
                samples: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
                for name in order:
                    server = servers[name]
                    samples[name].append(run.measure(f"{server.url}{path}", bodies[name][(key, mode)],
                                                     server.proc.pid, per_request=per_request, **opts))
                row: dict[str, Any] = {"key": key, "mode": mode, "audit": audit}
                for name, measured in samples.items():
                    row[name] = {"signatures_per_s": round(statistics.mean(m["signatures_per_s"] for m in measured)),
                                 "p99_ms": round(statistics.mean(m["p99_ms"] for m in measured), 2),
                                 "samples": [m["signatures_per_s"] for m in measured]}
                row["after_vs_before"] = run.ratio(row["after"]["signatures_per_s"], row["before"]["signatures_per_s"])
                rows.append(row)
                print(f"{key} {mode} audit={'on' if audit else 'off'}: before {row['before']['signatures_per_s']:,} "
                      f"after {row['after']['signatures_per_s']:,} sig/s ({row['after_vs_before']}x)", flush=True)
            for server in servers.values():
                server.stop()
    finally:
        run.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    lines = [f"# hsmgate A/B benchmark, {dt.date.today().isoformat()}", "",
             f"before: `{trees['before']}`; after: `{trees['after']}`. Both served at once with "
             f"`hsmgate serve --dev --workers 2` (soft token, SQLite); wrk -t1 -c{args.connections} "
             f"-d{args.seconds}s per sample, {args.rounds} samples per version alternating (A B B A …); batches of "
             f"{run.BATCH}. Load average before {' '.join(load_before)}, after {' '.join(load_after)}.", "",
             "| key | mode | audit | before sig/s | after sig/s | after / before | p99 before ms | p99 after ms "
             "| samples before | samples after |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['key']} | {r['mode']} | {'on' if r['audit'] else 'off'} | "
                     f"{r['before']['signatures_per_s']:,} | {r['after']['signatures_per_s']:,} | "
                     f"{r['after_vs_before']} | {r['before']['p99_ms']} | {r['after']['p99_ms']} | "
                     f"{', '.join(f'{s:,.0f}' for s in r['before']['samples'])} | "
                     f"{', '.join(f'{s:,.0f}' for s in r['after']['samples'])} |")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{dt.date.today().isoformat()}-ab"
    stem.with_suffix(".json").write_text(json.dumps({"rows": rows, "load_before": load_before,
                                                      "load_after": load_after}, indent=1) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
