"""TSB data objects (reference §3.1, ``DataObjectDto``): named values of up to 64 KB.

Stored in the state database. A ``private`` object ("encrypted" in the TSB's words) is encrypted by
the partition itself with AES-256-GCM under a dedicated key, :data:`DATA_OBJECT_KEY` (created in the
partition at first use; non-extractable, sensitive, not destroyable), with the object's name as
associated data, so a stored value cannot be moved to another name; a backend without AES-GCM
refuses private objects with 611.

Decisions where the reference is silent (**GAP**): attributes default to ``private: false``,
``modifiable: true``, ``destroyable: true``; ``POST`` on an existing name replaces the value when
the object is ``modifiable`` (attributes stay) and is refused with 615 otherwise; deleting a
non-destroyable object is 614; ``DELETE /v1/dataObject/{name}`` is hsmgate's path for deletion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hsmgate.domain import errors
from hsmgate.domain.hsm_errors import translated
from hsmgate.domain.key_use import Caller, KeyUse
from hsmgate.domain.keys import check_label
from hsmgate.hsm.base import (
    CipherMechanism,
    CipherMode,
    KeyAttributes,
    KeyNotFound,
    KeySpec,
    KeyType,
    Partition,
)
from hsmgate.store.data_objects import DataObjectRepository, DuplicateName
from hsmgate.store.models import DataObjectRecord

MAX_VALUE_BYTES = 64 * 1024
#: Label of the partition key that encrypts private data objects.
DATA_OBJECT_KEY = "hsmgate-data-object-key"
_GCM = CipherMechanism(CipherMode.AES_GCM, tag_bits=128)
_AAD_PREFIX = b"hsmgate/data-object/v1\x00"


class DataObjectExists(errors.TsbError):
    code = 615


class DataObjectInvalidValue(errors.TsbError):
    code = 616


class DataObjectNotFound(errors.TsbError):
    code = 653


@dataclass(frozen=True, slots=True)
class DataObject:
    name: str
    value: bytes
    private: bool
    modifiable: bool
    destroyable: bool


class DataObjectService:
    """Data objects of one partition; a caller's calls are recorded in the audit log through the
    key-use gate's recorder (``createDataObject``, ``getDataObject``, ``deleteDataObject``)."""

    def __init__(self, partition: Partition, repository: DataObjectRepository, *, gate: KeyUse,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.partition = partition
        self._repo = repository
        self._gate = gate
        self._clock = clock or (lambda: datetime.now(UTC))

    def put(self, caller: Caller, *, name: str, value: bytes, private: bool | None, modifiable: bool | None,
            destroyable: bool | None) -> tuple[DataObject, bool]:
        """Create (True) or, for an existing modifiable object, replace its value (False)."""
        return self._gate.run(caller, "createDataObject", name, lambda: self._put(
            name=name, value=value, private=private, modifiable=modifiable, destroyable=destroyable), mutating=True)

    def get(self, caller: Caller, name: str) -> DataObject:
        return self._gate.run(caller, "getDataObject", name, lambda: self._get(name))

    def delete(self, caller: Caller, name: str) -> None:
        self._gate.run(caller, "deleteDataObject", name, lambda: self._delete(name), mutating=True)

    def _put(self, *, name: str, value: bytes, private: bool | None, modifiable: bool | None,
             destroyable: bool | None) -> tuple[DataObject, bool]:
        check_label(name, "name")
        if not value:
            raise DataObjectInvalidValue("'value' must not be empty")
        if len(value) > MAX_VALUE_BYTES:
            raise DataObjectInvalidValue(f"'value' must be at most {MAX_VALUE_BYTES} bytes, got {len(value)}")
        existing = self._repo.get(name)
        if existing is None:
            wanted_private = bool(private)
            stored, nonce = self._seal(name, value) if wanted_private else (value, None)
            record = DataObjectRecord(
                name=name, value=stored, nonce=nonce, private=wanted_private,
                modifiable=True if modifiable is None else modifiable,
                destroyable=True if destroyable is None else destroyable,
                created_at=self._clock().replace(microsecond=0),
            )
            try:
                self._repo.add(record)
                return self._object(record, value), True
            except DuplicateName:
                existing = self._repo.get(name)
                if existing is None:  # deleted again meanwhile
                    raise DataObjectExists(f"data object '{name}' was changed concurrently; retry") from None
        if not existing.modifiable:
            raise DataObjectExists(f"data object '{name}' already exists and is not modifiable")
        stored, nonce = self._seal(name, value) if existing.private else (value, None)
        if not self._repo.replace_value(name, stored, nonce):
            raise DataObjectNotFound(f"data object '{name}' not found")
        return self._object(existing, value), False

    def _get(self, name: str) -> DataObject:
        check_label(name, "name")
        record = self._repo.get(name)
        if record is None:
            raise DataObjectNotFound(f"data object '{name}' not found")
        value = self._open(name, record) if record.private else record.value
        return self._object(record, value)

    def _delete(self, name: str) -> None:
        check_label(name, "name")
        record = self._repo.get(name)
        if record is None:
            raise DataObjectNotFound(f"data object '{name}' not found")
        if not record.destroyable:
            raise errors.OperationForbiddenForKey(f"data object '{name}' is not destroyable")
        if not self._repo.remove(name):
            raise DataObjectNotFound(f"data object '{name}' not found")

    # -- private values -------------------------------------------------------------------------

    def _seal(self, name: str, value: bytes) -> tuple[bytes, bytes]:
        self._ensure_key()
        with translated():
            result = self.partition.encrypt(DATA_OBJECT_KEY, _GCM, value, aad=_AAD_PREFIX + name.encode())
        return result.ciphertext + (result.tag or b""), result.iv or b""

    def _open(self, name: str, record: DataObjectRecord) -> bytes:
        sealed = record.value
        with translated():
            return self.partition.decrypt(DATA_OBJECT_KEY, _GCM, sealed[:-16], iv=record.nonce,
                                          aad=_AAD_PREFIX + name.encode(), tag=sealed[-16:])

    def _ensure_key(self) -> None:
        capabilities = self.partition.capabilities()
        if not capabilities.can_encrypt(KeyType.AES, _GCM):
            raise errors.UnsupportedOperation(
                f"private data objects need AES-GCM, which the {capabilities.backend} backend does not offer")
        try:
            self.partition.get(DATA_OBJECT_KEY)
            return
        except KeyNotFound:
            pass
        attributes = KeyAttributes(encrypt=True, decrypt=True, sensitive=True, extractable=False,
                                   modifiable=False, destroyable=False)
        try:
            with translated():
                self.partition.generate(DATA_OBJECT_KEY, KeySpec(KeyType.AES, 256), attributes)
        except errors.KeyAlreadyExists:  # created concurrently
            pass

    @staticmethod
    def _object(record: DataObjectRecord, value: bytes) -> DataObject:
        return DataObject(record.name, value, record.private, record.modifiable, record.destroyable)
