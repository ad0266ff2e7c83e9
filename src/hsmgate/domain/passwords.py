"""Key passwords: set on ``POST /v1/key``, required as ``keyPassword`` / ``password`` on every use.

The TSB forwards a key password to the HSM, which keeps it with the key. hsmgate keeps it in its
state database as an scrypt hash (RFC 7914, N=2^14, r=8, p=1, 16-byte random salt, 32-byte output;
tens of milliseconds and 16 MiB per check) in the key's metadata row, and checks it before the
backend is called.

Rules (wire: a string or a ``char[]`` array, both accepted; ``null``, ``""`` and ``[]`` mean none):

* a key with a password: a missing or wrong password → 620 ``res.error.key.password.mismatch``;
* a key without a password: a password given anyway → 620 as well (it cannot be right);
* comparison is constant-time (``hmac.compare_digest``). Successful checks are remembered in
  process for the same stored hash, keyed by an HMAC of the password under a per-process random
  key, so a busy key pays scrypt once, not on every request; a password change stores a new salt
  and so invalidates them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from hsmgate.domain import errors
from hsmgate.domain.hsm_errors import KEY_FUNCTION_NOT_PERMITTED
from hsmgate.domain.keys import check_key_name, key_info
from hsmgate.hsm.base import Partition
from hsmgate.store.key_metadata import KeyMetadataRepository

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
MAX_PASSWORD_LENGTH = 1024
_SCHEME = "scrypt"
_CACHE_SIZE = 4096


class KeyPasswordMismatch(errors.TsbError):
    code = 620


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (salt and hash in base64)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join((_SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != _SCHEME:
            return False
        digest = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
        return hmac.compare_digest(digest, base64.b64decode(expected))
    except (ValueError, TypeError):
        return False


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=_HASH_BYTES)


class PasswordService:
    """Password checks and changes for the keys of one partition."""

    def __init__(self, partition: Partition, metadata: KeyMetadataRepository, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.partition = partition
        self._metadata = metadata
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cache_key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, label: str, password: str | None, *, field: str = "keyPassword") -> None:
        """Raise 620 unless ``password`` is the key's password (or both are absent). A password
        given for a key that does not exist is 650, as the operation itself would answer; a name
        no key can have 610, as the operation would answer too."""
        master = check_key_name(label).master  # a derived key has its master's password
        self.verify(label, self._metadata.password_hash(master), password, field=field)

    def verify(self, label: str, stored: str | None, password: str | None, *, field: str = "keyPassword") -> None:
        """:meth:`check` against the key's stored password hash ``stored`` (None: no password),
        read by the caller (the key-use gate reads it with the key's other state)."""
        if stored is None:
            if password:
                key_info(self.partition, label)  # 650 (or a derived name's 614 / 400) before 620
                raise KeyPasswordMismatch(f"'{field}': key '{label}' has no password")
            return
        if not password:
            raise KeyPasswordMismatch(f"'{field}': key '{label}' is protected by a password")
        if not self._matches(stored, password):
            raise KeyPasswordMismatch(f"'{field}': wrong password for key '{label}'")

    @contextmanager
    def protecting_new_key(self, label: str, password: str | None) -> Iterator[None]:
        """Around the creation of key ``label``: its password hash is stored *before* the key
        exists, so it is never usable without the password; undone when creation fails."""
        if not password:
            yield
            return
        _check_length(password, "password")
        stored = hash_password(password)
        reserved = self._metadata.reserve(label, self._now(), password_hash=stored)
        try:
            yield
        except BaseException:
            if reserved:
                self._metadata.forget(label)
            raise
        # a row left over from a key deleted outside hsmgate was not ours to reserve: set it now
        self._metadata.set_password_hash(label, stored, when=self._now())

    def change(self, label: str, password: str | None, new_password: str | None) -> None:
        """``POST /v1/key/changePassword``: the key must be ``modifiable``; the old password must
        match; an empty new password removes the password."""
        info = key_info(self.partition, label)
        if not info.attributes.modifiable:
            raise errors.TsbError(f"{KEY_FUNCTION_NOT_PERMITTED}: key '{label}' is not modifiable",
                                  code=701, status=400)
        self.check(label, password, field="password")
        if new_password:
            _check_length(new_password, "newPassword")
        self._metadata.set_password_hash(label, hash_password(new_password) if new_password else None,
                                         when=self._now())

    def _matches(self, stored: str, password: str) -> bool:
        token = hmac.new(self._cache_key, stored.encode() + b"\x00" + password.encode(), "sha256").digest()
        with self._lock:
            if token in self._verified:
                self._verified.move_to_end(token)
                return True
        if not verify_password(password, stored):
            return False
        with self._lock:
            self._verified[token] = None
            while len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        return True

    def _now(self) -> datetime:
        return self._clock().replace(microsecond=0)


def _check_length(password: str, field: str) -> None:
    if len(password) > MAX_PASSWORD_LENGTH:
        raise errors.ValidationFailed(f"'{field}' must be at most {MAX_PASSWORD_LENGTH} characters")
