"""What the metrics cost a signature: ``POST /v1/synchronousSign`` through the whole ASGI app
(middleware stack, routing, the key-use gate, the soft token, the audit commit), in process, without
sockets or an HTTP client, so that a few microseconds are not lost in noise.

    .venv/bin/python bench/metrics_cost.py [--requests 500] [--rounds 20]
    PYTHONPATH=<tree from before the metrics>/src .venv/bin/python bench/metrics_cost.py   # "on" and "off" alike

One app, measured in alternating rounds with its metrics on (as served) and off (the request
middleware taken out of the stack, the gate's and the audit log's counters replaced by no-ops); it
prints the best round's and the median round's mean CPU time per signature of each (this
process's CPU time, so that other processes on a shared machine do not count), and their
difference, for Ed25519 and EC P-256, audit off and on.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from hsmgate.app import create_app
from hsmgate.settings import Settings

try:
    from hsmgate.api.metrics import MetricsMiddleware
    from hsmgate.domain.metrics import NoOperationCounter
except ImportError:  # a source tree from before the metrics: measured as it is (--before)
    MetricsMiddleware = NoOperationCounter = None  # type: ignore[assignment, misc]

KEYS = {"Ed25519": ("ED", "1.3.101.112", "EDDSA"), "P-256": ("EC", "1.2.840.10045.3.1.7", "SHA256_WITH_ECDSA")}


class Call:
    """One request to an ASGI app, made by hand: scope, body, and the collected answer."""

    def __init__(self, method: str, path: str, body: bytes) -> None:
        self.scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
        }
        self.body = body

    async def run(self, app: Any) -> tuple[int, bytes]:
        status, chunks, sent = 0, [], False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(dict(self.scope), receive, send)
        return status, b"".join(chunks)


class NoAudit:
    def queued(self, records: int) -> None:
        return None

    def committed(self, records: int, seconds: float) -> None:
        return None

    def failed(self, records: int) -> None:
        return None


def switch(app: Any, on: bool) -> None:
    """The app's metrics on (as built) or off: no request middleware, no-op counters. Private
    attributes are set here on purpose: this measures what they cost."""
    runtime = app.state.runtime
    if MetricsMiddleware is None:
        return
    if not hasattr(app.state, "bench_saved"):
        app.state.bench_saved = (list(app.user_middleware), {
            name: runtime.gateway.services(name).key_use._metrics for name in runtime.gateway.names()},
            runtime.audit.repository._observer if runtime.audit else None)
    middleware, counters, observer = app.state.bench_saved
    app.user_middleware = middleware if on else [m for m in middleware if m.cls is not MetricsMiddleware]
    app.middleware_stack = None  # Starlette builds the stack again on the next request
    for name, counter in counters.items():
        runtime.gateway.services(name).key_use._metrics = counter if on else NoOperationCounter()  # type: ignore[misc]
    if runtime.audit:
        runtime.audit.repository._observer = observer if on else NoAudit()


async def measure(app: Any, key: str, requests: int, rounds: int) -> dict[str, list[float]]:
    algorithm, curve, signature = KEYS[key]
    label = f"bench-{key}-{secrets.token_hex(3)}"
    create = {"label": label, "algorithm": algorithm, "curveOid": curve,
              "attributes": {"sign": True, "decrypt": False, "unwrap": False, "destroyable": True}}
    status, answer = await Call("POST", "/v1/key", json.dumps(create).encode()).run(app)
    assert status == 201, answer
    sign = Call("POST", "/v1/synchronousSign", json.dumps({"signRequest": {
        "payload": base64.b64encode(b"payload").decode(), "signKeyName": label,
        "signatureAlgorithm": signature}}).encode())
    for on in (True, False):
        switch(app, on)
        for _ in range(200):  # warm up caches and the rebuilt stack
            await sign.run(app)
    means: dict[str, list[float]] = {"on": [], "off": []}
    for index in range(2 * rounds):
        mode = ("on", "off")[(index + index // 2) % 2]  # on off off on …
        switch(app, mode == "on")
        await sign.run(app)
        started = time.process_time()  # CPU time of this process: other processes' load does not count
        for _ in range(requests):
            status, answer = await sign.run(app)
        means[mode].append((time.process_time() - started) / requests * 1e6)
        assert status == 200, answer
    switch(app, True)
    return means


async def measure_app(settings: Settings, args: argparse.Namespace) -> None:
    """Every key of :data:`KEYS` on one app built from ``settings``."""
    app = create_app(settings)
    audit = "on " if settings.audit_enabled else "off"
    async with app.router.lifespan_context(app):
        for key in KEYS:
            means = await measure(app, key, args.requests, args.rounds)
            for name, pick in (("best round", min), ("median", statistics.median)):
                off, on = pick(means["off"]), pick(means["on"])
                print(f"{key:8} audit={audit} {name:10}  metrics off {off:7.1f} µs, "
                      f"on {on:7.1f} µs CPU per signature: {on - off:+6.1f} µs")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    for audit in (False, True):
        with tempfile.TemporaryDirectory(prefix="hsmgate-cost-") as directory:
            await measure_app(Settings(data_dir=Path(directory), dev=True, audit_enabled=audit,  # type: ignore[arg-type]
                                       master_key=base64.b64encode(secrets.token_bytes(32)).decode()), args)


if __name__ == "__main__":
    asyncio.run(main())
