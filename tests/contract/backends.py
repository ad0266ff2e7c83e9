"""How the contract suite opens each backend on throwaway storage."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hsmgate.hsm.base import Partition
from hsmgate.hsm.soft import SoftPartition
from hsmgate.store.database import Database
from hsmgate.store.soft_keys import SoftKeyRepository

BACKENDS = ["soft"]


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
    raise ValueError(f"unknown backend {name}")
