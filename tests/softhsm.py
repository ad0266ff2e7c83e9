"""Throwaway SoftHSM2 tokens for tests and benchmarks.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is initialised, and a process sees only the tokens that
existed then (hsmgate's PKCS#11 backend re-initialises the module when a configured token is missing, so
tokens made later are found too). Use **one token directory per process**: :func:`create_token` writes the
config on first use, sets ``SOFTHSM2_CONF`` and adds a token; call it again with the same directory for
more tokens. ``SOFTHSM2_CONF`` must be set before the module is loaded, i.e. before the first partition.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

MODULE_PATH = "/usr/lib/softhsm/libsofthsm2.so"
CONF_NAME = "softhsm2.conf"


class SoftHsmToken(NamedTuple):
    """A token made by :func:`create_token`."""

    module_path: str
    token_label: str
    pin: str
    conf_path: str


def softhsm_available() -> bool:
    """True when the SoftHSM2 module and ``softhsm2-util`` are installed."""
    return os.path.exists(MODULE_PATH) and shutil.which("softhsm2-util") is not None


def write_config(directory: Path) -> Path:
    """A SoftHSM2 config keeping its tokens in ``directory/tokens``; returns the config path."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / CONF_NAME
    conf.write_text(
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
        "slots.mechanisms = ALL\n"
        "library.reset_on_fork = false\n"
    )
    return conf


def create_token(directory: Path, label: str = "hsmgate-test", *, pin: str = "1234", so_pin: str = "5678",
                 export: bool = True) -> SoftHsmToken:
    """Initialise a token ``label`` in ``directory`` (config written on first use) and, with ``export``,
    point ``SOFTHSM2_CONF`` at it for this process and its children."""
    directory = Path(directory)
    conf = directory / CONF_NAME
    if not conf.exists():
        conf = write_config(directory)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    command = ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin]
    subprocess.run(command, check=True, capture_output=True, env=env, timeout=30)
    if export:
        os.environ["SOFTHSM2_CONF"] = str(conf)
    return SoftHsmToken(MODULE_PATH, label, pin, str(conf))


def token_directory(token: SoftHsmToken) -> Path:
    """The directory SoftHSM2 keeps ``token`` in (a UUID under ``tokens/``), found by its label."""
    padded = token.token_label.encode().ljust(32, b" ")
    for candidate in (Path(token.conf_path).parent / "tokens").iterdir():
        object_file = candidate / "token.object"
        if object_file.exists() and padded in object_file.read_bytes():
            return candidate
    raise FileNotFoundError(f"no token directory for {token.token_label}")
