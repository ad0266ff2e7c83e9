"""Files at rest: a data directory hsmgate creates is 0700, every file in it 0600 (state.db and its
-wal / -shm, lock files, master.key), whatever umask hsmgate was started with; an older data
directory open to others is tightened when it is plainly hsmgate's and refused otherwise."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hsmgate.app import create_app
from hsmgate.settings import ConfigError
from tests.helpers import free_port, soft_settings, unique


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def permissive_umask() -> Iterator[None]:
    """The umask most shells have (022); restored afterwards."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.subprocess
@pytest.mark.slow
def test_serve_creates_a_private_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSMGATE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "hsmgate", "serve", "--dev", "--port", str(port), "--data-dir", str(data_dir)],
        env={**env, "HSMGATE_LOG_LEVEL": "warning"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: os.umask(0o022))  # noqa: PLW1509 - the umask of an ordinary shell
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("serve did not start")
            time.sleep(0.1)
        created = httpx.post(f"http://127.0.0.1:{port}/v1/key", timeout=30, json={
            "label": unique("modes"), "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
            "attributes": {"sign": True, "decrypt": False, "unwrap": False}})
        assert created.status_code == 201, created.text
        files = {path.name: mode(path) for path in data_dir.iterdir()}  # while running: -wal and -shm exist
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert mode(data_dir) == 0o700, output
    assert {"state.db", "state.db-wal", "state.db-shm", "master.key"} <= set(files), files
    assert all(value == 0o600 for value in files.values()), {k: oct(v) for k, v in files.items()}
    assert all(mode(path) == 0o600 for path in data_dir.iterdir())


def test_an_older_data_dir_is_tightened(tmp_path: Path, permissive_umask: None) -> None:
    """What hsmgate used to leave behind: a 0755 directory with a 0644 database."""
    data_dir = tmp_path / "old"
    settings = soft_settings(data_dir)
    create_app(settings).state.db.dispose()
    os.umask(0o022)
    os.chmod(data_dir, 0o755)
    for name in ("state.db", "state.db-wal", "state.db-shm", "state.db.migrate.lock"):
        (data_dir / name).touch()
        os.chmod(data_dir / name, 0o644)
    app = create_app(settings)
    try:
        assert mode(data_dir) == 0o700
        assert {name.name: oct(mode(name)) for name in data_dir.iterdir()} == \
            {name.name: "0o600" for name in data_dir.iterdir()}
        probe = data_dir / "probe"
        probe.touch()  # the process umask is 077 now
        assert mode(probe) == 0o600
        probe.unlink()
    finally:
        app.state.db.dispose()


@pytest.mark.subprocess
def test_a_shared_directory_open_to_others_is_refused(tmp_path: Path, permissive_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    (shared / "notes.txt").write_text("not hsmgate's")
    with pytest.raises(ConfigError, match=r"open to group or others .*\(notes.txt\)"):
        create_app(soft_settings(shared))
    assert mode(shared) == 0o755  # left as it was

    env = {k: v for k, v in os.environ.items() if not k.startswith("HSMGATE_")}
    result = subprocess.run([sys.executable, "-m", "hsmgate", "serve", "--dev", "--data-dir", str(shared)],
                            env={**env, "HSMGATE_MASTER_KEY": "44" * 32}, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("hsmgate:")]
    assert len(errors) == 1 and "chmod 700" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
