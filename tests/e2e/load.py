"""Bounded load over loopback for the fault and soak tests: signing clients in threads, every answer
classified (a valid signature, a clean TSB error, or something a gateway must never answer), the
spans of failures around injected faults, audit records read back with ``hsmgate audit export``,
and worker memory from ``/proc``.

Everything here is bounded: a load stops after its time or its request count, whichever comes first,
and each request after its timeout.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import TSB_ERROR_KEYS

#: ``verify(signature, payload)``: raises when the signature is not the key's over the payload.
Verifier = Callable[[bytes, bytes], None]

OK = "ok"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request of a load: when it was sent and answered (monotonic seconds), and how."""

    started: float
    ended: float
    kind: str  # OK, "<status>/<errorCode>", "<status>/not-a-TSB-error", "timeout", "transport:<Error>", …
    request_id: str
    detail: str = ""  # of a failure: the start of the answer's body, or the exception

    @property
    def ok(self) -> bool:
        return self.kind == OK


def classify(response: httpx.Response) -> str:
    """``ok`` for 200; ``<status>/<errorCode>`` for a clean TSB error body (JSON, exactly errorCode,
    reason ``res.error.…``, a message, no stack trace); otherwise what was wrong with it."""
    if response.status_code == 200:
        return OK
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"{response.status_code}/not-json"
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code}/not-json"
    if not (isinstance(body, dict) and set(body) == TSB_ERROR_KEYS and isinstance(body["errorCode"], int)
            and isinstance(body["reason"], str) and body["reason"].startswith("res.error.")
            and isinstance(body["message"], str) and body["message"] and "Traceback" not in response.text):
        return f"{response.status_code}/not-a-TSB-error"
    return f"{response.status_code}/{body['errorCode']}"


@dataclass
class SignLoad:
    """``clients`` threads, each with its own keep-alive connection, signing distinct payloads with
    one key until ``seconds`` have passed or ``max_requests`` were sent in all. Every 200 carries a
    signature checked with ``verify``; each request sends its own ``X-Request-ID``."""

    url: str
    label: str
    algorithm: str
    verify: Verifier
    clients: int = 8
    seconds: float = 10.0
    timeout: float = 10.0
    max_requests: int = 100_000
    outcomes: list[Outcome] = field(default_factory=list)
    t0: float = 0.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sent = 0
        self._threads = [threading.Thread(target=self._client, args=(n,), name=f"load-{n}", daemon=True)
                         for n in range(self.clients)]

    def start(self) -> SignLoad:
        self.t0 = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> list[Outcome]:
        for thread in self._threads:
            thread.join(self.seconds + self.timeout + 30)
            assert not thread.is_alive(), f"{thread.name} did not stop"
        return sorted(self.outcomes, key=lambda o: o.started)

    def _take(self) -> bool:
        with self._lock:
            if self._sent >= self.max_requests or time.monotonic() - self.t0 >= self.seconds:
                return False
            self._sent += 1
            return True

    def _client(self, number: int) -> None:
        local: list[Outcome] = []
        count = 0
        with httpx.Client(base_url=self.url, timeout=self.timeout) as http:
            while self._take():
                count += 1
                request_id = f"load-{number}-{count}"
                payload = request_id.encode()
                started = time.monotonic()
                detail = ""
                try:
                    response = http.post("/v1/synchronousSign", headers={"X-Request-ID": request_id}, json={
                        "signRequest": {"payload": base64.b64encode(payload).decode(),
                                        "signKeyName": self.label, "signatureAlgorithm": self.algorithm}})
                    kind = classify(response)
                    if kind != OK:
                        detail = response.text[:300]
                    if kind == OK:
                        try:
                            self.verify(base64.b64decode(response.json()["signature"]), payload)
                        except Exception:  # noqa: BLE001 - any failure is a wrong answer
                            kind = "200/bad-signature"
                except httpx.TimeoutException:
                    kind = "timeout"
                except httpx.TransportError as exc:
                    kind, detail = f"transport:{type(exc).__name__}", str(exc)[:300]
                local.append(Outcome(started - self.t0, time.monotonic() - self.t0, kind, request_id, detail))
        with self._lock:
            self.outcomes.extend(local)


def kinds(outcomes: Iterable[Outcome]) -> Counter[str]:
    return Counter(outcome.kind for outcome in outcomes)


def latencies(outcomes: list[Outcome]) -> str:
    """p50 / p99 / max answer time of all requests, and the longest a failed one took."""
    times = sorted(o.ended - o.started for o in outcomes)
    failed = [o.ended - o.started for o in outcomes if not o.ok]
    if not times:
        return "no requests"
    worst_failure = f"{max(failed) * 1000:.0f} ms" if failed else "-"
    return (f"latency p50 {times[len(times) // 2] * 1000:.1f} ms, p99 {times[int(len(times) * 0.99)] * 1000:.1f} ms, "
            f"max {times[-1] * 1000:.0f} ms; slowest failure {worst_failure}")


@dataclass(frozen=True, slots=True)
class Recovery:
    """What the clients saw of one fault: failures of requests answered from its start on (until
    the next fault), and when service was whole again."""

    fault: str
    start: float
    end: float
    failures: int
    first_failure: float | None  # seconds after the fault started
    last_failure: float | None   # answer of the last failed request, seconds after the fault ended
    first_ok_after: float | None  # first success of a request sent after the fault ended

    @property
    def recovery(self) -> float:
        """Seconds from the end of the fault until no request failed any more (0: none failed)."""
        return max(0.0, self.last_failure or 0.0)

    def line(self) -> str:
        first = "-" if self.first_ok_after is None else f"{self.first_ok_after:.3f} s"
        return (f"{self.fault}: at {self.start:.2f}-{self.end:.2f} s, {self.failures} failed, "
                f"service whole {self.recovery:.3f} s after it ended, first success sent after it: {first}")


def recoveries(outcomes: list[Outcome], faults: list[tuple[str, float, float]]) -> list[Recovery]:
    """One :class:`Recovery` per ``(name, start, end)`` fault (load-relative seconds, in order)."""
    result = []
    for index, (name, start, end) in enumerate(faults):
        until = faults[index + 1][1] if index + 1 < len(faults) else float("inf")
        window = [o for o in outcomes if start <= o.ended < until]
        failed = [o for o in window if not o.ok]
        after = [o for o in window if o.ok and o.started >= end]
        result.append(Recovery(
            name, start, end, len(failed),
            min(o.ended for o in failed) - start if failed else None,
            max(o.ended for o in failed) - end if failed else None,
            min(o.ended for o in after) - end if after else None,
        ))
    return result


def hsmgate(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m hsmgate ARGS`` with ``env`` added to this process's environment."""
    return subprocess.run([sys.executable, "-m", "hsmgate", *args], capture_output=True, text=True,
                          env={**os.environ, "HSMGATE_LOG_LEVEL": "warning", **env}, timeout=timeout, check=False)


def audit_records(data_dir: Path, env: dict[str, str], output: Path) -> list[dict[str, Any]]:
    """Every audit record of the state database, read with ``hsmgate audit export``."""
    result = hsmgate(["audit", "export", "--data-dir", str(data_dir), "--output", str(output)], env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in output.read_text().splitlines() if line.strip()]
    return [line for line in lines if line["type"] == "record"]


def audit_verify(data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``hsmgate audit verify`` of the state database, held against the data directory's anchor file."""
    return hsmgate(["audit", "verify", "--data-dir", str(data_dir)], env)


def vm_rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` (``VmRSS`` in ``/proc/<pid>/status``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/<pid>/stat``), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
