"""``hsmgate serve`` start-up failures, each run as the real command in a child process: exactly one
line on standard error naming the problem and the fix, nothing on standard output, exit status 2,
no traceback, no warning — and nothing written when the address is taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hsmgate.app import create_app
from tests.helpers import free_port, soft_settings
from tests.postgres import SERVER, ensure_server
from tests.softhsm import SoftHsmToken

pytestmark = pytest.mark.subprocess

MASTER_KEY = bytes(range(32)).hex()


def hsmgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m hsmgate ARGS`` with a clean HSMGATE_* environment plus ``env``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HSMGATE_")}
    environment |= {"HSMGATE_MASTER_KEY": MASTER_KEY, **(env or {})}
    return subprocess.run([sys.executable, "-m", "hsmgate", *args], env=environment, capture_output=True,
                          text=True, timeout=120, check=False)


def one_line_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The single line of a failed start; asserts the shape every start-up failure has."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hsmgate: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def serve(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return hsmgate("serve", "--dev", "--data-dir", str(data_dir), "--port", str(free_port()), *extra, env=env)


# -- the data directory ----------------------------------------------------------------------------


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# not a directory\n")
    line = one_line_failure(serve(readme), f"the data directory {readme} is not a directory", "--data-dir")
    assert "HSMGATE_DATA_DIR" in line


@pytest.fixture()
def unwritable_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this user cannot create files in: read-only by its mode, or for root (whom modes do
    not stop) a sysfs directory."""
    if os.geteuid() == 0:
        candidate = Path("/sys/kernel")
        try:
            tempfile.TemporaryFile(dir=candidate).close()
        except OSError:
            yield candidate
            return
        pytest.skip("running as root and /sys/kernel is writable here: no unwritable directory to test with")
    data = tmp_path / "read-only"
    data.mkdir(mode=0o500)
    yield data
    data.chmod(0o700)


def test_data_dir_that_is_not_writable(unwritable_dir: Path) -> None:
    before = sorted(unwritable_dir.iterdir())
    one_line_failure(serve(unwritable_dir), f"the data directory {unwritable_dir} is not writable", "--data-dir")
    assert sorted(unwritable_dir.iterdir()) == before


def test_data_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocked = tmp_path / "file" / "data"
    blocked.parent.write_text("")
    one_line_failure(serve(blocked), "cannot create the data directory", "--data-dir")


# -- the database ----------------------------------------------------------------------------------


def test_postgres_scheme_is_named_with_its_fix(tmp_path: Path) -> None:
    result = serve(tmp_path / "d", env={"HSMGATE_DATABASE_URL": "postgres://hsm:s3cret@127.0.0.1:5432/hsm"})
    line = one_line_failure(result, "postgres://", "postgresql://")
    assert "s3cret" not in line


def test_database_url_of_an_unknown_kind(tmp_path: Path) -> None:
    one_line_failure(serve(tmp_path / "d", env={"HSMGATE_DATABASE_URL": "mysql://u@host/db"}),
                     "'mysql://'", "postgresql://")


def test_unreachable_postgresql(tmp_path: Path) -> None:
    closed = free_port()
    result = serve(tmp_path / "d", env={"HSMGATE_DATABASE_URL": f"postgresql://hsm:s3cret@127.0.0.1:{closed}/hsm"})
    line = one_line_failure(result, f"127.0.0.1:{closed}", "connection refused", "HSMGATE_DATABASE_URL")
    assert "s3cret" not in line


@pytest.mark.postgres
def test_missing_postgresql_database_says_how_to_create_it(tmp_path: Path) -> None:
    ensure_server()
    url = f"{SERVER}/hsmgate_missing_db"
    line = one_line_failure(serve(tmp_path / "d", env={"HSMGATE_DATABASE_URL": url}),
                            "database 'hsmgate_missing_db' does not exist", "createdb", "CREATE DATABASE")
    assert "hsmgate_missing_db" in line.split("createdb", 1)[1]


def test_sqlite_file_in_a_missing_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'state.db'}"
    one_line_failure(serve(tmp_path / "d", env={"HSMGATE_DATABASE_URL": url}),
                     "cannot open the SQLite database", str(tmp_path / "missing"))


# -- the address -----------------------------------------------------------------------------------


def test_busy_port_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A second server on a busy port used to migrate the (shared) database, create a master key and
    sign an audit checkpoint before uvicorn found the port taken."""
    shared = tmp_path / "shared.db"
    data_dir = tmp_path / "second"
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = hsmgate("serve", "--dev", "--data-dir", str(data_dir), "--port", str(port),
                         env={"HSMGATE_DATABASE_URL": f"sqlite:///{shared}", "HSMGATE_MASTER_KEY": ""})
    one_line_failure(result, f"port {port} on 127.0.0.1 is already in use", "--port")
    assert not shared.exists() and not data_dir.exists()


# -- PKCS#11 ---------------------------------------------------------------------------------------


def test_missing_pkcs11_module(tmp_path: Path) -> None:
    env = {"HSMGATE_BACKEND": "pkcs11", "HSMGATE_PKCS11_MODULE": str(tmp_path / "nope.so"),
           "HSMGATE_PKCS11_TOKEN_LABEL": "t", "HSMGATE_PKCS11_PIN": "1234"}
    one_line_failure(serve(tmp_path / "d", env=env), "does not exist", "HSMGATE_PKCS11_MODULE")


def test_pkcs11_without_token_label_or_slot(tmp_path: Path) -> None:
    env = {"HSMGATE_BACKEND": "pkcs11", "HSMGATE_PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so",
           "HSMGATE_PKCS11_PIN": "1234"}
    one_line_failure(serve(tmp_path / "d", env=env), "HSMGATE_PKCS11_TOKEN_LABEL", "hsmgate pkcs11 list")


@pytest.mark.pkcs11
def test_absent_pkcs11_token_names_the_listing_command(softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    env = {"HSMGATE_BACKEND": "pkcs11", "HSMGATE_PKCS11_MODULE": softhsm_token.module_path,
           "HSMGATE_PKCS11_TOKEN_LABEL": "no-such-token", "HSMGATE_PKCS11_PIN": softhsm_token.pin,
           "SOFTHSM2_CONF": softhsm_token.conf_path}
    one_line_failure(serve(tmp_path / "d", env=env), "No token 'no-such-token'",
                     f"hsmgate pkcs11 list --module {softhsm_token.module_path}")


@pytest.mark.pkcs11
def test_refused_pin_names_the_setting(softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    env = {"HSMGATE_BACKEND": "pkcs11", "HSMGATE_PKCS11_MODULE": softhsm_token.module_path,
           "HSMGATE_PKCS11_TOKEN_LABEL": softhsm_token.token_label, "HSMGATE_PKCS11_PIN": "987654",
           "SOFTHSM2_CONF": softhsm_token.conf_path}
    line = one_line_failure(serve(tmp_path / "d", env=env), "refused the PIN", "HSMGATE_PKCS11_PIN")
    assert "987654" not in line


# -- state bound to its token ----------------------------------------------------------------------


@pytest.mark.pkcs11
def test_soft_state_opened_with_a_pkcs11_token_is_refused(softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    app = create_app(soft_settings(data_dir, master_key=MASTER_KEY))
    app.state.runtime.close()
    env = {"HSMGATE_BACKEND": "pkcs11", "HSMGATE_PKCS11_MODULE": softhsm_token.module_path,
           "HSMGATE_PKCS11_TOKEN_LABEL": softhsm_token.token_label, "HSMGATE_PKCS11_PIN": softhsm_token.pin,
           "SOFTHSM2_CONF": softhsm_token.conf_path}
    one_line_failure(serve(data_dir, env=env), "partition 'default' of this state database belongs to the soft token",
                     f"not to PKCS#11 token '{softhsm_token.token_label}'", "HSMGATE_MASTER_KEY")


# -- a clean start ---------------------------------------------------------------------------------


def test_a_good_start_prints_no_deprecation_warning(tmp_path: Path) -> None:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HSMGATE_")}
    environment["HSMGATE_MASTER_KEY"] = MASTER_KEY
    process = subprocess.Popen([sys.executable, "-m", "hsmgate", "serve", "--dev", "--data-dir", str(tmp_path / "d"),
                                "--port", str(port)], env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "DeprecationWarning" not in stderr and "Traceback" not in stderr, stderr
    assert "WARNING: dev mode" in stderr


def test_the_app_factory_prints_no_deprecation_warning(tmp_path: Path) -> None:
    """Process managers import hsmgate.app themselves (uvicorn --factory hsmgate.app:app_from_env)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HSMGATE_")}
    environment |= {"HSMGATE_MASTER_KEY": MASTER_KEY, "HSMGATE_DEV": "true", "HSMGATE_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-W", "default", "-c",
                             "from hsmgate.app import app_from_env; app_from_env().state.runtime.close()"],
                            env=environment, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
