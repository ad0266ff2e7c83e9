"""Partitions beyond the one of the settings (the 1:n mode): each with its own backend, kept in
the state database, managed with ``hsmgate partition add | list | remove``.

A partition's secret (the PKCS#11 user PIN) is stored only sealed: AES-256-GCM under the master
key with a fresh 96-bit nonce, the associated data binding it to the partition's name, so a sealed
PIN copied to another partition's row does not open. Without the master key nothing opens.

Changes take effect when hsmgate (re)starts: the gateway opens every partition at start-up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsmgate.domain.data_objects import DATA_OBJECT_KEY
from hsmgate.store.models import PartitionRecord
from hsmgate.store.partitions import DuplicatePartition, PartitionRepository

PARTITION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SEAL_CONTEXT = b"hsmgate/partition-secret/v1"


class PartitionError(Exception):
    """A partition cannot be added, opened or removed; the message says why."""


@dataclass(frozen=True, slots=True)
class PartitionConfig:
    """One partition's backend. ``pin`` is the opened secret (None in listings)."""

    name: str
    backend: Literal["soft", "pkcs11"]
    module: str | None = None
    token_label: str | None = None
    slot: int | None = None
    pool_size: int | None = None
    pin: str | None = None

    def __repr__(self) -> str:  # never print the PIN
        return (f"PartitionConfig(name={self.name!r}, backend={self.backend!r}, module={self.module!r}, "
                f"token_label={self.token_label!r}, slot={self.slot!r})")


def check_name(name: str) -> None:
    if not PARTITION_NAME.match(name):
        raise PartitionError(f"invalid partition name {name!r}: 1-128 characters A-Z a-z 0-9 . _ -, "
                             "starting with a letter or digit")


class SecretSealer:
    """AES-256-GCM sealing of partition secrets under the master key."""

    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(master_key)

    @staticmethod
    def _aad(name: str) -> bytes:
        return _SEAL_CONTEXT + b"\x00" + name.encode()

    def seal(self, name: str, secret: str) -> tuple[bytes, bytes]:
        """(nonce, ciphertext‖tag)."""
        nonce = os.urandom(12)
        return nonce, self._aead.encrypt(nonce, secret.encode(), self._aad(name))

    def open(self, name: str, nonce: bytes, sealed: bytes) -> str:
        try:
            return self._aead.decrypt(nonce, sealed, self._aad(name)).decode()
        except InvalidTag:
            raise PartitionError(f"the secret of partition '{name}' does not open: wrong master key, "
                                 "or the record was altered") from None


class PartitionRegistry:
    """Adds, lists, opens and removes the database partitions."""

    def __init__(self, repository: PartitionRepository, master_key: bytes | None) -> None:
        self._repository = repository
        self._sealer = SecretSealer(master_key) if master_key is not None else None

    def add(self, config: PartitionConfig) -> None:
        check_name(config.name)
        if config.backend == "pkcs11":
            if not config.module or not (config.token_label or config.slot is not None):
                raise PartitionError("a pkcs11 partition needs --module and --token-label (or --slot)")
            if not config.pin:
                raise PartitionError("a pkcs11 partition needs the user PIN (--pin-file)")
            for other in self.list():
                if other.backend == "pkcs11" and (other.module, other.token_label, other.slot) == \
                        (config.module, config.token_label, config.slot):
                    raise PartitionError(f"partition '{other.name}' already uses this token: two partitions on "
                                         "one token would see each other's keys")
        options = {"module": config.module, "token_label": config.token_label, "slot": config.slot,
                   "pool_size": config.pool_size}
        record = PartitionRecord(name=config.name, backend=config.backend,
                                 options={k: v for k, v in options.items() if v is not None},
                                 created_at=datetime.now(UTC))
        if config.pin:
            record.secret_nonce, record.sealed_secret = self._require_sealer().seal(config.name, config.pin)
        try:
            self._repository.add(record)
        except DuplicatePartition:
            raise PartitionError(f"partition '{config.name}' already exists") from None

    def list(self) -> list[PartitionConfig]:
        """The partitions, without their secrets."""
        return [self._config(record, with_pin=False) for record in self._repository.all()]

    def load(self) -> list[PartitionConfig]:
        """The partitions with their secrets opened (for serving)."""
        return [self._config(record, with_pin=True) for record in self._repository.all()]

    def remove(self, name: str, *, purge: bool = False, attestation_key_name: str = "attestation-key",
               timestamp_key_name: str = "timestamp-key", internal_labels: Iterable[str] = ()) -> int:
        """Forget a partition. Soft-token keys other than hsmgate's own service keys (the
        attestation key, the SKA timestamp key — HSMGATE_ATTESTATION_KEY_NAME and
        HSMGATE_TIMESTAMP_KEY_NAME —, the data-object key and ``internal_labels``: the approver
        backup key), data objects and approvers make this fail unless ``purge`` deletes them with
        the partition's certificates,
        wrapped-key records and SKA requests (else a partition added later under the same name
        would get them back). The attestation key is always kept: the partition's audit checkpoints
        stay verifiable, and a partition added again under the name continues its chain with it.
        Keys on a PKCS#11 token stay there. Audit records are kept. Returns the number of keys
        purged (service keys not counted)."""
        record = self._repository.get(name)
        if record is None:
            raise PartitionError(f"no partition '{name}' in the database")
        purged = 0
        if record.backend == "soft":
            internal = {attestation_key_name, timestamp_key_name, DATA_OBJECT_KEY, *internal_labels}
            labels = [label for label in self._repository.soft_key_labels(name) if label not in internal]
            if labels and not purge:
                shown = ", ".join(labels[:5]) + (", …" if len(labels) > 5 else "")
                raise PartitionError(f"partition '{name}' still holds {len(labels)} key(s) ({shown}); delete them "
                                     "first or pass --purge to destroy them with the partition")
            objects = self._repository.data_object_count(name)
            if objects and not purge:
                raise PartitionError(f"partition '{name}' still holds {objects} data object(s); delete them "
                                     "first or pass --purge to destroy them with the partition")
            approvers = self._repository.approver_count(name)
            if approvers and not purge:  # sealed under the partition's backup key, destroyed with it
                raise PartitionError(f"partition '{name}' still holds {approvers} approver(s); delete them "
                                     "first or pass --purge to destroy them with the partition")
            # hsmgate's own leftovers (the timestamp key, records of deleted keys) go in any case
            self._repository.purge_keys(name, keep=attestation_key_name)
            purged = len(labels)
        self._repository.remove(name)
        return purged

    def _config(self, record: PartitionRecord, *, with_pin: bool) -> PartitionConfig:
        options = record.options or {}
        pin = None
        if with_pin and record.sealed_secret is not None and record.secret_nonce is not None:
            pin = self._require_sealer().open(record.name, record.secret_nonce, record.sealed_secret)
        return PartitionConfig(name=record.name, backend=record.backend,  # type: ignore[arg-type]
                               module=options.get("module"), token_label=options.get("token_label"),
                               slot=options.get("slot"), pool_size=options.get("pool_size"), pin=pin)

    def _require_sealer(self) -> SecretSealer:
        if self._sealer is None:
            raise PartitionError("the master key is needed to seal or open partition secrets")
        return self._sealer
