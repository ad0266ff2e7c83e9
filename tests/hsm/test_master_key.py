"""A soft token opened with the wrong master key: hsmgate refuses to start (exit 2, one line, no
traceback) instead of answering UP and sealing new keys under the wrong key; and keys sealed under
another master key can still be described and deleted (only their use unseals them)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hsmgate.app import create_app
from hsmgate.hsm.base import (
    BackendUnavailable,
    HashAlg,
    KeyAttributes,
    KeySpec,
    KeyType,
    SignMechanism,
    SignScheme,
)
from hsmgate.hsm.soft import SoftPartition
from hsmgate.settings import ConfigError
from hsmgate.store.database import Database
from hsmgate.store.soft_keys import SoftKeyRepository
from tests.helpers import free_port, soft_settings

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = bytes(range(1, 33)).hex()
P256 = "1.2.840.10045.3.1.7"
ECDSA = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)


def make_data_dir(data_dir: Path) -> None:
    """What a first ``hsmgate serve`` with master key A leaves: the attestation key, sealed under A."""
    app = create_app(soft_settings(data_dir, master_key=KEY_A))
    app.state.gateway.close()
    app.state.db.dispose()


@pytest.mark.subprocess
@pytest.mark.slow
def test_serve_with_another_master_key_exits_2_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "D"
    make_data_dir(data_dir)
    env = {name: value for name, value in os.environ.items() if not name.startswith("HSMGATE_")}
    env["HSMGATE_MASTER_KEY"] = KEY_B
    result = subprocess.run(
        [sys.executable, "-m", "hsmgate", "serve", "--dev", "--data-dir", str(data_dir), "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if "master key" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hsmgate: the master key (HSMGATE_MASTER_KEY) does not unseal the keys of "
                               "partition 'default'"), lines[0]


def test_create_app_refuses_the_wrong_master_key_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "D"
    make_data_dir(data_dir)
    (data_dir / "master.key").write_text(KEY_B + "\n")
    (data_dir / "master.key").chmod(0o600)
    with pytest.raises(ConfigError, match=r"master\.key\) does not unseal"):
        create_app(soft_settings(data_dir, master_key=None))
    create_app(soft_settings(data_dir, master_key=KEY_A)).state.db.dispose()  # the right key still starts


def test_keys_of_another_master_key_can_be_described_and_deleted(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    db.migrate()
    attributes = KeyAttributes(sign=True, destroyable=True)
    right = SoftPartition("default", repository=SoftKeyRepository(db, "default"), master_key=bytes(range(32)))
    right.generate("k", KeySpec(KeyType.EC, curve_oid=P256), attributes)
    right.check_master_key("attestation-key")  # no attestation key: any key is checked

    wrong = SoftPartition("default", repository=SoftKeyRepository(db, "default"), master_key=bytes(range(1, 33)))
    with pytest.raises(BackendUnavailable, match="cannot be unsealed"):
        wrong.check_master_key("attestation-key")
    info = wrong.get("k")
    assert info.key_type is KeyType.EC and info.attributes.sign and info.public_key
    with pytest.raises(BackendUnavailable):
        wrong.sign("k", ECDSA, b"data")  # a use unseals
    wrong.delete("k")
    assert wrong.list_labels() == []
    wrong.check_master_key("attestation-key")  # an empty partition has nothing to check
    db.dispose()
