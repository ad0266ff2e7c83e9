"""How the contract suite opens each backend on throwaway storage, and the cases it runs.

A case is a (key type, mechanism) pair from what hsmgate implements in software (``softcrypto``,
``softcipher``): every backend runs every case, and a backend that does not declare one skips it
with the reason, so the report lists what each backend cannot do. A backend that declares a case
outside these lists fails ``test_declared_cases_are_all_under_test``.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from hsmgate.hsm import softcipher, softcrypto
from hsmgate.hsm.base import CipherMechanism, KeyType, Partition, SignMechanism, WrapMechanism
from hsmgate.hsm.soft import SoftPartition
from hsmgate.store.database import Database
from hsmgate.store.soft_keys import SoftKeyRepository
from tests.softhsm import create_token, softhsm_available

BACKENDS = [pytest.param("soft", id="soft"), pytest.param("pkcs11", id="pkcs11", marks=pytest.mark.pkcs11)]

SIGN_KEY_TYPES = (KeyType.RSA, KeyType.EC, KeyType.ED)
CIPHER_KEY_TYPES = (KeyType.RSA, KeyType.AES, KeyType.CAMELLIA, KeyType.TDEA, KeyType.CHACHA20)
WRAP_KEY_TYPES = (KeyType.AES, KeyType.RSA)
M = TypeVar("M", SignMechanism, CipherMechanism, WrapMechanism)


def mechanism_id(key_type: KeyType, mechanism: SignMechanism | CipherMechanism | WrapMechanism) -> str:
    """A readable test id: ``EC-ECDSA-sha256-prehashed``, ``AES-AES-GCM-tag_bits96``."""
    parts = [key_type.value]
    for field in dataclasses.fields(mechanism):
        value = getattr(mechanism, field.name)
        if isinstance(value, enum.Enum):
            parts.append(str(value.value))
        elif value is True:
            parts.append(field.name)
        elif isinstance(value, int) and not isinstance(value, bool):
            parts.append(f"{field.name}{value}")
    return "-".join(parts)


def _cases(key_types: tuple[KeyType, ...],
           mechanisms_of: Callable[[KeyType], Iterable[M]]) -> list[tuple[KeyType, M]]:
    return sorted(((t, m) for t in key_types for m in mechanisms_of(t)), key=lambda case: mechanism_id(*case))


SIGN_CASES = _cases(SIGN_KEY_TYPES, softcrypto.sign_mechanisms)
CIPHER_CASES = _cases(CIPHER_KEY_TYPES, softcipher.cipher_mechanisms)
WRAP_CASES = _cases(WRAP_KEY_TYPES, softcipher.wrap_mechanisms)


def params(cases: Sequence[tuple[KeyType, SignMechanism | CipherMechanism | WrapMechanism]],
           ) -> list[pytest.ParameterSet]:
    """``cases`` as pytest parameters named by :func:`mechanism_id`."""
    return [pytest.param(key_type, mechanism, id=mechanism_id(key_type, mechanism))
            for key_type, mechanism in cases]


def unsupported(partition: Partition, what: str) -> NoReturn:
    """Skip: the backend of ``partition`` does not support ``what``."""
    pytest.skip(f"{partition.capabilities().backend} does not support {what}")


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
