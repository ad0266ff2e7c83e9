"""Settings: precedence, validation, the master key file and the loopback rule."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hsmgate.settings import ConfigError, Settings


def test_defaults_are_those_of_make_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HSMGATE_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert (settings.host, settings.port, settings.backend, settings.dev) == ("127.0.0.1", 8080, "soft", False)
    assert settings.data_dir == Path(".hsmgate")
    assert settings.resolved_database_url.startswith("sqlite:///") and settings.resolved_database_url.endswith("state.db")


def test_env_overrides_toml_and_flags_override_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hsmgate.toml"
    config.write_text('port = 9001\nhost = "127.0.0.2"\n')
    monkeypatch.setenv("HSMGATE_CONFIG", str(config))
    assert Settings().port == 9001 and Settings().host == "127.0.0.2"
    monkeypatch.setenv("HSMGATE_PORT", "9002")
    assert Settings().port == 9002
    assert Settings(port=9003).port == 9003


def test_unknown_toml_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("prot = 1\n")
    monkeypatch.setenv("HSMGATE_CONFIG", str(config))
    with pytest.raises(ValueError):
        Settings()


def test_dev_mode_refuses_non_loopback() -> None:
    Settings(dev=True, host="127.0.0.1").check_bind()
    Settings(dev=True, host="::1").check_bind()
    Settings(dev=True, host="localhost").check_bind()
    with pytest.raises(ConfigError):
        Settings(dev=True, host="0.0.0.0").check_bind()


def test_master_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    key = settings.load_master_key()
    path = tmp_path / "master.key"
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.load_master_key() == key
    path.chmod(0o644)
    with pytest.raises(ConfigError):
        settings.load_master_key()


def test_master_key_from_env_in_hex_or_base64(tmp_path: Path) -> None:
    key = bytes(range(32))
    assert Settings(data_dir=tmp_path, master_key=key.hex()).load_master_key() == key
    import base64

    assert Settings(data_dir=tmp_path, master_key=base64.b64encode(key).decode()).load_master_key() == key
    with pytest.raises(ConfigError):
        Settings(data_dir=tmp_path, master_key="too-short").load_master_key()


def test_pkcs11_backend_needs_module() -> None:
    with pytest.raises(ValueError):
        Settings(backend="pkcs11")


def test_secrets_are_not_printed() -> None:
    settings = Settings(master_key="00" * 32, pkcs11_pin="1234")
    assert "1234" not in repr(settings) and "00" * 32 not in repr(settings)


def test_the_role_names_of_the_settings_are_the_roles() -> None:
    """Settings name roles as text (they import nothing of auth); the names must be the roles'."""
    from typing import get_args

    from hsmgate.auth.roles import Role
    from hsmgate.settings import RoleName

    assert set(get_args(RoleName)) == {role.value for role in Role}
