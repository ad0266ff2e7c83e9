"""Approver management (wave-2 §2; docs/approvers.md): approvers whose RSA key pair hsmgate makes,
keeps sealed under the partition's approver backup key and hands out once, transport-encrypted,
against a single-use one-time code.

* ``create`` makes the key pair, certificate and PKCS#12 (``hsm/approver_keys.py``), stores them
  sealed (:class:`hsmgate.store.models.ApproverRecord`) and answers a fresh one-time code.
* ``onboard`` redeems the code (constant-time comparison of its SHA-256, single use by a
  conditional UPDATE, refused after ``code_ttl`` seconds: 412) and answers the PKCS#12 under the
  approver's transport password (AES-GCM).
* ``restore`` / ``renew`` issue a new code for the same backup; ``forgot_password`` submits an
  asynchronous request under the backup key's SKA policy (:data:`RequestKind.APPROVER_RESTORE`)
  whose execution re-protects the PKCS#12 with the new password and whose ``result`` is the new code.
* ``certificate`` resolves an approver's name to its certificate: the one place policies naming
  ``onboarded_approver_certificate`` approvers are resolved (``policy.resolve_onboarded``).
* ``delete`` removes the approver and its open tasks; policies keep naming it, unresolvable
  (fail closed) until an approver of that name is created again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hsmgate.domain import errors
from hsmgate.domain.clock import Clock
from hsmgate.domain.hsm_errors import translated
from hsmgate.domain.ska.approval_token import certificate_public_key
from hsmgate.domain.ska.guard import guard_bits, policy_json
from hsmgate.domain.ska.policy import Policy
from hsmgate.domain.ska.requests import KINDS, RequestKind, RequestService, SkaAudit, Submission, utc
from hsmgate.domain.text import character_name, unsafe_character
from hsmgate.hsm import approver_keys
from hsmgate.hsm.approver_keys import APPROVER_KEY_SIZES, TRANSPORT_KEY_BYTES, SealedApprover
from hsmgate.hsm.base import HashAlg, KeyAttributes, KeySpec, KeyType, Partition
from hsmgate.store.approvers import ApproverRepository, DuplicateApprover
from hsmgate.store.key_metadata import KeyMetadataRepository
from hsmgate.store.models import ApproverRecord

#: Digits of a one-time code: 12 decimal digits (about 40 bits) — typed by hand, yet out of reach
#: of guessing within a code's lifetime.
CODE_DIGITS = 12
MAX_NAME_LENGTH = 256
MAX_PASSWORD_LENGTH = 128
MAX_VALIDITY_DAYS = 36500
#: Size of the approver backup key made at start (RSA, decrypt and encrypt only, never extractable).
BACKUP_KEY_SIZE = 3072


@dataclass(frozen=True, slots=True)
class ApproverEntry:
    """One approver of ``onboarding/status``: its name and DER certificate."""

    name: str
    certificate: bytes


@dataclass(frozen=True, slots=True)
class OnboardingStatus:
    """Approvers that redeemed their latest code (``onboarded``) and those holding an unused one."""

    onboarded: list[ApproverEntry]
    pending: list[ApproverEntry]


@dataclass(frozen=True, slots=True)
class OnboardingPayload:
    """The answer of ``/v1/approver/onboard``: the PKCS#12, AES-GCM under the transport password."""

    initialization_vector: bytes
    encrypted_payload: bytes


def check_approver_name(name: str | None, field: str = "approverName") -> str:
    """A non-empty name of at most 256 characters without ``/``, control or invisible characters (600)."""
    if name is None or not name.strip():
        raise errors.ValidationFailed(f"'{field}' must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise errors.ValidationFailed(f"'{field}' must be at most {MAX_NAME_LENGTH} characters")
    char = unsafe_character(name)
    if char is not None or "\x00" in name:
        raise errors.ValidationFailed(f"'{field}' must not contain control or invisible characters"
                                      + (f" (found {character_name(char)})" if char else ""))
    if "/" in name:  # DELETE …/delete/{approverName} could not name it
        raise errors.ValidationFailed(f"'{field}' must not contain '/'")
    return name


def _password(value: str | None, field: str) -> bytes:
    if value is None or value == "":
        raise errors.ValidationFailed(f"'{field}' must not be empty")
    if len(value) > MAX_PASSWORD_LENGTH:
        raise errors.ValidationFailed(f"'{field}' must be at most {MAX_PASSWORD_LENGTH} characters")
    return value.encode("utf-8")


def _code_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode("utf-8")).digest()


def _sealed(row: ApproverRecord) -> SealedApprover:
    return SealedApprover(certificate=bytes(row.certificate), oaep_hash=HashAlg(row.oaep_hash),
                          wrapped_data_key=bytes(row.wrapped_data_key), backup=bytes(row.backup),
                          recovery=bytes(row.recovery))


class ApproverService:
    """The approvers of one partition."""

    def __init__(self, *, partition: Partition, repository: ApproverRepository, requests: RequestService,
                 metadata: KeyMetadataRepository, backup_key: str, code_ttl: int, clock: Clock) -> None:
        self.partition = partition
        self.repository = repository
        self.requests = requests
        self._metadata = metadata
        self.backup_key = backup_key
        self.code_ttl = code_ttl
        self.clock = clock
        requests.register(RequestKind.APPROVER_RESTORE, self._execute_restore)

    # -- the backup key ------------------------------------------------------------------------------

    def ensure_backup_key(self, policy: Policy | None = None) -> None:
        """Create the RSA backup key if absent (safe when processes race), flag it internal and give
        it ``policy`` (None: keep its policy, an empty one for a new key)."""
        now = self.clock.now().replace(microsecond=0)
        with translated():
            if self.backup_key not in self.partition.list_labels():
                attributes = KeyAttributes(decrypt=True, encrypt=True, sensitive=True, extractable=False,
                                           modifiable=False, destroyable=False)
                try:
                    self.partition.generate(self.backup_key, KeySpec(KeyType.RSA, size=BACKUP_KEY_SIZE), attributes)
                except Exception:  # another process may have won the race
                    if self.backup_key not in self.partition.list_labels():
                        raise
        self._metadata.mark_internal(self.backup_key, when=now)
        stored, _ = self._metadata.ska(self.backup_key)
        if policy is not None or stored is None:
            chosen = policy or Policy()
            self._metadata.set_ska(self.backup_key, policy=policy_json(chosen), guard=guard_bits(chosen))

    # -- management ----------------------------------------------------------------------------------

    def _aad(self, name: str) -> bytes:
        return json.dumps([self.requests.partition_name, name]).encode("utf-8")

    def _new_code(self) -> tuple[str, bytes, datetime]:
        code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
        return code, _code_hash(code), self.clock.now() + timedelta(seconds=self.code_ttl)

    def _row(self, name: str) -> ApproverRecord:
        row = self.repository.get(check_approver_name(name))
        if row is None:
            raise errors.TsbError(f"approver '{name}' does not exist", code=654)
        return row

    def create(self, *, name: str, algorithm: str | None, key_size: int | None, backup_password: str | None,
               validity: int | None) -> str:
        """``/v1/approverManagement/create``: the approver's key pair, sealed; returns its code."""
        check_approver_name(name)
        if (algorithm or "").upper() != "RSA":
            raise errors.TsbError(f"'algorithm' {algorithm!r} is not supported: approvers have RSA keys", code=601)
        size = key_size if key_size is not None else 2048
        if size not in APPROVER_KEY_SIZES:
            raise errors.KeySizeInvalid(f"'keySize' must be one of {', '.join(map(str, APPROVER_KEY_SIZES))}")
        days = validity if validity is not None else 3650
        if not 1 <= days <= MAX_VALIDITY_DAYS:
            raise errors.ValidationFailed(f"'validity' must be between 1 and {MAX_VALIDITY_DAYS} days")
        password = _password(backup_password, "backupPassword")
        if self.repository.get(name) is not None:
            raise errors.TsbError(f"approver '{name}' exists already", code=632)
        with translated():
            sealed = approver_keys.create_approver(
                self.partition, self.backup_key, name=name, key_size=size, validity_days=days,
                backup_password=password, aad=self._aad(name), now=self.clock.now())
        code, code_hash, expires = self._new_code()
        try:
            self.repository.add(ApproverRecord(
                name=name, key_size=size, certificate=sealed.certificate, backup_key=self.backup_key,
                oaep_hash=sealed.oaep_hash.value, wrapped_data_key=sealed.wrapped_data_key, backup=sealed.backup,
                recovery=sealed.recovery, code_hash=code_hash, code_expires_at=expires,
                created_at=self.clock.now().replace(microsecond=0)))
        except DuplicateApprover:
            raise errors.TsbError(f"approver '{name}' exists already", code=632) from None
        return code

    def onboard(self, *, name: str, code: str | None, transport_password: str | None) -> OnboardingPayload:
        """``/v1/approver/onboard``: redeem the one-time code; the PKCS#12 under the transport password."""
        if not code:
            raise errors.ValidationFailed("'oneTimeCode' must not be empty")
        transport = (transport_password or "").encode("utf-8")
        if len(transport) not in TRANSPORT_KEY_BYTES:
            raise errors.ValidationFailed(
                f"'transportPassword' must be 16 or 32 bytes long (UTF-8), not {len(transport)}")
        row = self._row(name)
        given = _code_hash(code)
        expires = utc(row.code_expires_at)
        if row.code_hash is None or not hmac.compare_digest(given, bytes(row.code_hash)):
            raise errors.TsbError("'oneTimeCode' is not valid for this approver (wrong, or used already: "
                                  "ask for a new one)", code=412)
        now = self.clock.now()
        if expires is None or now > expires:
            raise errors.TsbError("'oneTimeCode' has expired: ask for a new one", code=412)
        with translated():
            pkcs12 = approver_keys.open_backup(self.partition, row.backup_key, _sealed(row), self._aad(name))
        if not self.repository.redeem(name, given, now.replace(microsecond=0)):
            raise errors.TsbError("'oneTimeCode' was used already: ask for a new one", code=412)
        iv, ciphertext = approver_keys.transport_encrypt(pkcs12, transport)
        return OnboardingPayload(iv, ciphertext)

    def renew(self, name: str) -> str:
        """``renewOneTimeCode`` and ``restoreFromBackup`` (password known): a new code, the old one void."""
        self._row(name)
        code, code_hash, expires = self._new_code()
        if not self.repository.set_code(name, code_hash, expires):
            raise errors.TsbError(f"approver '{name}' does not exist", code=654)
        return code

    def forgot_password(self, name: str, new_password: str | None, audit: SkaAudit | None = None) -> str:
        """``restoreFromBackup/forgotPassword``: the request id of the asynchronous restore."""
        password = _password(new_password, "newBackupPassword")
        row = self._row(name)
        with translated():
            sealed_password = approver_keys.encrypt_secret(self.partition, row.backup_key, password)
        envelope: dict[str, Any] = {KINDS[RequestKind.APPROVER_RESTORE].envelope: {
            "approverName": name, "unwrapKeyName": row.backup_key,
            "encryptedNewBackupPassword": base64.b64encode(sealed_password).decode("ascii")}}
        view = self.requests.submit(Submission(RequestKind.APPROVER_RESTORE, row.backup_key, name.encode("utf-8"),
                                               envelope), audit)
        return view.id

    def _execute_restore(self, label: str, inner: dict[str, Any]) -> str:
        """The approved restore: the PKCS#12 under the new password, a new code (the result)."""
        name = str(inner.get("approverName") or "")
        row = self._row(name)
        if row.backup_key != label:
            raise errors.OperationForbiddenForKey(f"approver '{name}' is not sealed under key '{label}'")
        encrypted = base64.b64decode(str(inner.get("encryptedNewBackupPassword") or ""))
        with translated():
            sealed = approver_keys.reseal_with_password(
                self.partition, label, _sealed(row), name=name, encrypted_password=encrypted, aad=self._aad(name))
        code, code_hash, expires = self._new_code()
        if not self.repository.reseal(name, oaep_hash=sealed.oaep_hash.value, wrapped_data_key=sealed.wrapped_data_key,
                                      backup=sealed.backup, recovery=sealed.recovery, code_hash=code_hash,
                                      expires_at=expires):
            raise errors.TsbError(f"approver '{name}' does not exist", code=654)
        return code

    def status(self) -> OnboardingStatus:
        """Onboarded approvers (no unused code, a code redeemed) and pending ones (an unused code)."""
        onboarded: list[ApproverEntry] = []
        pending: list[ApproverEntry] = []
        for row in self.repository.all():
            entry = ApproverEntry(row.name, bytes(row.certificate))
            (pending if row.code_hash is not None or row.onboarded_at is None else onboarded).append(entry)
        return OnboardingStatus(onboarded, pending)

    def delete(self, name: str) -> None:
        """Remove the approver and its open tasks (docs/approvers.md, "Deleting an approver")."""
        row = self._row(name)
        if not self.repository.remove(name):
            raise errors.TsbError(f"approver '{name}' does not exist", code=654)
        self.requests.repository.drop_open_tasks(certificate_public_key(bytes(row.certificate)))

    def certificate(self, name: str) -> bytes | None:
        """The DER certificate of approver ``name``; None when there is no such approver."""
        row = self.repository.get(name)
        return None if row is None else bytes(row.certificate)
