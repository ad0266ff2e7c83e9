"""``hsmgate serve --workers 2`` as real processes: when the supervisor is killed (``kill -9``) its
workers stop within seconds and the port refuses connections, so a restart with a rotated API key
cannot share the port with workers that still accept the revoked one; and while any process of a
``serve`` holds the data directory, a second ``serve`` on it exits 2 with one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

OLD_KEY, NEW_KEY = "old-service-key-0123456789abcdef", "new-service-key-0123456789abcdef"


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def refuses(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


class Serve:
    """``python -m hsmgate serve`` with API keys in its own session."""

    def __init__(self, data_dir: Path, port: int, key: str, workers: int = 2) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HSMGATE_")}
        env.update({"HSMGATE_MASTER_KEY": "55" * 32, "HSMGATE_API_KEYS_SERVICE": key, "HSMGATE_LOG_LEVEL": "warning"})
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hsmgate", "serve", "--port", str(port), "--data-dir", str(data_dir),
             "--workers", str(workers)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}: {self.proc.communicate()}")
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False
        assert wait_for(ready, 60), "serve did not start"

    def workers(self) -> list[int]:
        pids = []
        for pid in map(int, Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()):
            try:
                if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(pid)
            except OSError:
                continue
        return pids

    def version(self, key: str) -> int:
        return httpx.get(f"http://127.0.0.1:{self.port}/v1/versionInfo", headers={"X-API-KEY": key},
                         timeout=5).status_code

    def outcome(self, seconds: float = 30) -> tuple[int | None, str]:
        """Exit status and standard error of a serve expected to stop by itself; one still running
        after ``seconds`` is stopped and reported with status None."""
        try:
            _out, err = self.proc.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.stop()
            return None, "still running"
        return self.proc.returncode, err

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture()
def cleanup() -> Iterator[list[int]]:
    """Pids to kill at the end whatever happened (workers that might outlive their group)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_workers_die_with_their_supervisor(tmp_path: Path, cleanup: list[int]) -> None:
    port = free_port()
    first = Serve(tmp_path / "data", port, OLD_KEY)
    try:
        first.wait_ready()
        workers = first.workers()
        assert len(workers) == 2, workers
        cleanup.extend(workers)
        assert first.version(OLD_KEY) == 200
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
        assert wait_for(lambda: not any(alive(pid) for pid in workers), 8), \
            f"workers still alive after their supervisor died: {[p for p in workers if alive(p)]}"
        assert wait_for(lambda: refuses(port), 5), "the port still accepts connections"

        second = Serve(tmp_path / "data", port, NEW_KEY)  # the restart, with a rotated key
        try:
            second.wait_ready()
            cleanup.extend(second.workers())
            codes = {second.version(OLD_KEY) for _ in range(40)}  # new connections, over every worker
            assert codes == {401}, codes
            assert second.version(NEW_KEY) == 200
        finally:
            second.stop()
    finally:
        first.stop()


def test_a_second_serve_on_the_same_data_dir_exits_2(tmp_path: Path, cleanup: list[int]) -> None:
    first = Serve(tmp_path / "data", free_port(), OLD_KEY)
    try:
        first.wait_ready()
        cleanup.extend(first.workers())
        second = Serve(tmp_path / "data", free_port(), NEW_KEY, workers=1)
        code, err = second.outcome()
        assert code == 2, err
        errors = [line for line in err.splitlines() if line.startswith("hsmgate:")]
        assert len(errors) == 1 and "in use by another hsmgate serve" in errors[0], err
        assert "Traceback" not in err
        assert first.version(OLD_KEY) == 200  # the first one is untouched
    finally:
        first.stop()


def test_a_surviving_worker_still_holds_the_data_dir(tmp_path: Path, cleanup: list[int]) -> None:
    """A worker that has not stopped yet (here: held with SIGSTOP while its supervisor is killed)
    keeps the data directory locked: a new serve refuses to start beside it."""
    first = Serve(tmp_path / "data", free_port(), OLD_KEY)
    try:
        first.wait_ready()
        workers = first.workers()
        cleanup.extend(workers)
        os.kill(workers[0], signal.SIGSTOP)
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(10)
        assert wait_for(lambda: not alive(workers[1]), 8)
        assert alive(workers[0])
        second = Serve(tmp_path / "data", free_port(), NEW_KEY, workers=1)
        code, err = second.outcome()
        assert code == 2 and "in use by another hsmgate serve" in err, err
        os.kill(workers[0], signal.SIGCONT)  # the pending parent-death signal stops it now
        assert wait_for(lambda: not alive(workers[0]), 8)
        third = Serve(tmp_path / "data", free_port(), NEW_KEY, workers=1)
        try:
            third.wait_ready()
        finally:
            third.stop()
    finally:
        first.stop()
