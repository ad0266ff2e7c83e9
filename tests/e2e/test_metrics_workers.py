"""``hsmgate serve --workers 2``: whichever worker answers ``GET /metrics`` reports the requests of
all of them (prometheus-client's multiprocess mode), and the supervisor removes the directory of
their values when it stops."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

REQUESTS = 40
SCRAPES = 8


def version_info_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "hsmgate_http_requests_total" and sample.labels == {
                    "method": "GET", "route": "/v1/versionInfo", "status": "200"}:
                return sample.value
    return 0.0


def test_every_scrape_adds_up_every_worker(tmp_path: Path) -> None:
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HSMGATE_")}
    environment |= {"HSMGATE_MASTER_KEY": bytes(range(32)).hex(), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    metrics_dir.mkdir()
    (metrics_dir / "counter_99999.db").write_bytes(b"left over by an earlier run")
    process = subprocess.Popen([sys.executable, "-m", "hsmgate", "serve", "--dev", "--workers", "2", "--data-dir",
                                str(tmp_path / "d"), "--port", str(port)], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.2)
        assert not (metrics_dir / "counter_99999.db").exists()  # an earlier run's values are not counted
        for _ in range(REQUESTS):  # a new connection each: the kernel spreads them over the workers
            assert httpx.get(f"{base}/v1/versionInfo", timeout=10).status_code == 200
        counts = [version_info_count(httpx.get(f"{base}/metrics", timeout=10).text) for _ in range(SCRAPES)]
        workers_with_values = {path.name for path in metrics_dir.glob("counter_*.db")}
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert counts == [REQUESTS] * SCRAPES, counts
    assert len(workers_with_values) >= 2, workers_with_values  # both workers answered requests
    assert "Traceback" not in stderr, stderr
