"""Process targets for the chain-concurrency tests (a small module: spawned children import it)."""

from __future__ import annotations

from hsmgate.domain.audit.recording import Actor, AuditTrail
from hsmgate.store.audit import AuditRepository
from hsmgate.store.database import Database


def append(url: str, tag: str, count: int, partitions: tuple[str, ...] = ("default",)) -> None:
    """``count`` records by ``tag``, spread over ``partitions``."""
    db = Database(url)
    repository = AuditRepository(db)
    trail = AuditTrail(repository)
    try:
        for index in range(count):
            partition = partitions[index % len(partitions)]
            trail.record(Actor(tag, "test", partition, f"{tag}-{index}"), "synchronousSign", "k", "ok")
    finally:
        repository.close()
        db.dispose()
