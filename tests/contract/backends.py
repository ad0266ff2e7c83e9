"""How the contract suite opens each backend on throwaway storage."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hsmgate.hsm.base import Partition
from hsmgate.hsm.soft import SoftPartition
from hsmgate.store.database import Database
from hsmgate.store.soft_keys import SoftKeyRepository
from tests.softhsm import create_token, softhsm_available

BACKENDS = [pytest.param("soft", id="soft"), pytest.param("pkcs11", id="pkcs11", marks=pytest.mark.pkcs11)]


@contextmanager
def open_backend(name: str, directory: Path) -> Iterator[Partition]:
    if name == "soft":
        db = Database(f"sqlite:///{directory / 'state.db'}")
        db.migrate()
        partition = SoftPartition("contract", repository=SoftKeyRepository(db, "contract"),
                                  master_key=secrets.token_bytes(32))
        try:
            yield partition
        finally:
            partition.close()
            db.dispose()
        return
    if name == "pkcs11":
        if not softhsm_available():
            pytest.skip("SoftHSM2 is not installed")
        from hsmgate.hsm.pkcs11 import Pkcs11Partition

        # a process reads SOFTHSM2_CONF once: new tokens go where the process already looks
        conf = os.environ.get("SOFTHSM2_CONF")
        home = Path(conf).parent if conf and Path(conf).exists() else directory
        token = create_token(home, f"contract-{secrets.token_hex(4)}")
        partition = Pkcs11Partition("contract", module_path=token.module_path, token_label=token.token_label,
                                    pin=token.pin)
        try:
            yield partition
        finally:
            partition.close()
        return
    raise ValueError(f"unknown backend {name}")
