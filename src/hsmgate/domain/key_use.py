"""The one gate every use of a key passes: sign, verify, encrypt, decrypt, wrap, unwrap, HMAC, KEM,
certificates, RFC 3161 timestamps, export and random bytes.

Each partition has one :class:`KeyUse`. Routes map wire DTOs onto its methods, the SKA request
executor calls the same methods once a request is approved, and nothing else hands a caller's key
name to a backend. Every method does, in this order, for each key it names:

1. the key name (610 when malformed): ``<master>/<path>`` names a derived key, whose key state —
   internal flag, password, SKA policy — is its master's (``domain/derivation.py``);
2. reserved keys: a key flagged *internal* (``key_metadata.internal``: the attestation key, the SKA
   timestamp key, the data-object key, any key hsmgate keeps for itself) is refused with 614 —
   whatever the operation and the caller's role;
3. the key password (620; a failed check is recorded as ``checkKeyPassword``, so guessing shows);
4. SKA: a key with a policy never leaves the partition (export and wrap: 614); a blocked key is
   refused (614); a private-key use of a key whose ``ruleUse`` needs approvals is refused (401)
   unless ``signedApprovals`` verify (the same check for a single request and for each batch
   item) or the SKA request executor runs it;
5. the operation (the domain services of ``signing``, ``operations``, ``kem``, ``certificates``,
   ``timestamps``, ``key_transfer`` on the backend partition);
6. the audit record of the outcome — for signatures, one record per key of the request listing each
   signature (algorithm, payload digest, outcome: ``domain/audit/items.py``) — submitted while the operation runs
   (``domain/audit/recording.py``: the route waits for its commit before answering); and the count
   of the outcome by operation, key family and algorithm (``domain/metrics.py``), for every
   caller, the SKA executor included, whether or not the audit log is on.

A single signature is a batch of one: :meth:`KeyUse.sign` runs :meth:`KeyUse.sign_batch`.

Executing an approved SKA request (``Caller.executing`` set) skips the password (it was checked
when the request was made and is not stored) and the gate's own record (the request lifecycle
records ``execute<Kind>`` around it, with the request id).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from cryptography import x509

from hsmgate.domain import errors
from hsmgate.domain.algorithms import KEY_FAMILIES, UNKNOWN_FAMILY, SignatureType
from hsmgate.domain.audit.chain import ERROR, OK
from hsmgate.domain.audit.items import AuditItem, items_text, payload_digest
from hsmgate.domain.audit.items import record_outcome as audit_outcome
from hsmgate.domain.audit.recording import Actor, AuditTrail, RequestAudit
from hsmgate.domain.certificates import CertificateService, Profile
from hsmgate.domain.errors import TsbError
from hsmgate.domain.file_encryption import FileEncryptionService, StreamedFile
from hsmgate.domain.hsm_errors import translated
from hsmgate.domain.kem import KemService
from hsmgate.domain.key_transfer import KeyTransferService
from hsmgate.domain.keys import SignedKey, check_key_name, check_label
from hsmgate.domain.metrics import NoOperationCounter, OperationCounter
from hsmgate.domain.operations import Encrypted, OperationsService
from hsmgate.domain.passwords import PasswordService
from hsmgate.domain.signing import SigningService
from hsmgate.domain.ska.approval_token import Operation
from hsmgate.domain.ska.approvals import ApprovalService
from hsmgate.domain.ska.guard import check_use
from hsmgate.domain.timestamps import HASH_ALGORITHMS, RfcTimestampService
from hsmgate.hsm.base import ExportedKey, KeyAttributes, Partition, SchnorrOptions
from hsmgate.store.key_metadata import KeyMetadataRepository, KeyState

T = TypeVar("T")


class InternalKey(errors.OperationForbiddenForKey):
    """614 for a key hsmgate keeps for itself."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who uses a key. ``executing``: the SKA request executor runs an approved request (see the
    module text)."""

    actor: Actor
    executing: bool = False


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A key named by a request, with the password it came with and that password's wire field
    (named in a 620 answer)."""

    label: str
    password: str | None = None
    field: str = "keyPassword"


@dataclass(frozen=True, slots=True)
class SignItem:
    """One signature to make: ``/v1/synchronousSign``, one item of a batch, or an approved request."""

    key: KeyRef
    algorithm: str
    payload: bytes
    signature_type: SignatureType | None = None
    context: bytes | None = None
    approvals: Sequence[bytes] | None = None  # ``signedApprovals`` (SKA)
    schnorr: SchnorrOptions | None = None  # BIP-340: aux randomness and Taproot tweak
    index: int = 0  # the item's place in its request (a batch), as the audit record names it


@dataclass(frozen=True, slots=True)
class VerifyItem:
    """One signature to check."""

    key: KeyRef
    algorithm: str
    payload: bytes
    signature: bytes
    context: bytes | None = None


@dataclass(frozen=True, slots=True)
class KeyUseServices:
    """The domain services that do the operations, all on the backend partition."""

    signing: SigningService
    operations: OperationsService
    kem: KemService
    certificates: CertificateService
    timestamps: RfcTimestampService
    transfer: KeyTransferService
    files: FileEncryptionService


class KeyUse:
    """The key-use gate of one partition (module text)."""

    def __init__(self, partition: Partition, *, metadata: KeyMetadataRepository, passwords: PasswordService,
                 services: KeyUseServices, audit: AuditTrail | None,
                 metrics: OperationCounter | None = None) -> None:
        self.partition = partition
        self.services = services
        self._metadata = metadata
        self._passwords = passwords
        self._audit = audit
        self._metrics: OperationCounter = metrics if metrics is not None else NoOperationCounter()
        self._approvals: ApprovalService | None = None

    def attach_approvals(self, approvals: ApprovalService) -> None:
        """The SKA approval service that checks ``signedApprovals`` (built after the gate)."""
        self._approvals = approvals

    # -- the steps -------------------------------------------------------------------------------

    def recorder(self, caller: Caller) -> RequestAudit | None:
        """Where this caller's operations are recorded (None: not by the gate)."""
        if self._audit is None or caller.executing:
            return None
        return RequestAudit(self._audit, caller.actor)

    def audit(self, caller: Caller) -> RequestAudit:
        """The recorder of a caller's SKA request steps (it records nothing with the audit log off)."""
        return RequestAudit(self._audit, caller.actor)

    def check_password(self, caller: Caller, key: KeyRef) -> KeyState:
        """Steps 1 and 3: the key name (610) and its password (620), a refusal recorded as
        ``checkKeyPassword``. Also used alone when an SKA request is submitted (its password is
        checked then and never stored). Returns the key's state for :meth:`check_key`."""
        return self._password_passed(caller, self.recorder(caller), key)

    def _password_passed(self, caller: Caller, recorder: RequestAudit | None, key: KeyRef) -> KeyState:
        try:
            state = self._metadata.state(check_key_name(key.label).master)
            if not caller.executing:
                self._passwords.verify(key.label, state.password_hash, key.password, field=key.field)
        except TsbError as exc:
            if recorder is not None:
                recorder.record_outcome("checkKeyPassword", key.label, ERROR, exc.code)
            raise
        return state

    def check_key(self, key: KeyRef, state: KeyState, *, private: bool = False, exporting: bool = False,
                  approvals: Sequence[bytes] | None = None, approval_payload: bytes = b"") -> None:
        """Steps 2 and 4 for a key whose password passed. ``private``: a use of the private or
        secret key (sign, decrypt, unwrap, decapsulate, certificates) that SKA policies guard;
        ``exporting``: the key's material leaves the partition (export, wrap)."""
        label = key.label
        if state.internal:
            raise InternalKey(f"key '{label}' is internal to hsmgate: no caller may use it")
        if exporting and state.guard is not None:
            raise errors.OperationForbiddenForKey(f"key '{label}' has a policy (SKA key): it never leaves the HSM")
        if private:
            approved = False
            if approvals:
                if self._approvals is None:
                    raise errors.UnsupportedOperation("Smart Key Attributes are not available on this partition")
                self._approvals.check_signed_approvals(label, Operation.USE, approval_payload, approvals)
                approved = True
            check_use(self.partition.name, label, state.guard, approved=approved)

    def run(self, caller: Caller, operation: str, label: str | None, call: Callable[[], T], *,
            mutating: bool = False) -> T:
        """Steps 5–6: ``call`` with its outcome recorded (``mutating``: a ``started`` record first)."""
        return _recorded(self.recorder(caller), caller, operation, label, call, mutating=mutating)

    def _use(self, caller: Caller, operation: str, key: KeyRef, call: Callable[[], T], *, algorithm: str,
             key_type: str | None = None, private: bool = False, exporting: bool = False,
             approvals: Sequence[bytes] | None = None, approval_payload: bytes = b"", mutating: bool = False) -> T:
        """The whole road for an operation on one key, counted by ``algorithm`` (and ``key_type``
        when the algorithm does not tell the key family)."""

        def road() -> T:
            recorder = self.recorder(caller)
            state = self._password_passed(caller, recorder, key)

            def admitted() -> T:
                self.check_key(key, state, private=private, exporting=exporting, approvals=approvals,
                               approval_payload=approval_payload)
                return call()

            return _recorded(recorder, caller, operation, key.label, admitted, mutating=mutating)

        return self._counted(operation, algorithm, road, key_type)

    def _counted(self, operation: str, algorithm: str, call: Callable[[], T], key_type: str | None = None) -> T:
        """``call``, its outcome counted (step 6): every refusal and failure as ``error``."""
        label = algorithm_label(algorithm)
        family = key_type or KEY_FAMILIES.get(label, UNKNOWN_FAMILY)
        try:
            result = call()
        except Exception:
            self._metrics.count(operation, family, label, ERROR)
            raise
        self._metrics.count(operation, family, label, OK)
        return result

    # -- sign and verify ------------------------------------------------------------------------

    def sign(self, caller: Caller, item: SignItem) -> bytes:
        """One signature: a batch of one."""
        result = self.sign_batch(caller, [item])[0]
        if isinstance(result, TsbError):
            raise result
        return result

    def sign_batch(self, caller: Caller, items: Sequence[SignItem]) -> list[bytes | TsbError]:
        """A signature (or the TSB error of that item alone) per item, in order. Items are admitted
        one by one — each (key, password) pair's password is checked once per batch — then signed
        per (key, algorithm, encoding, context): the key is looked up once per group. Each item's
        outcome is counted."""
        try:
            results = self._sign_batch(caller, items)
        except Exception:
            self._count_items(SIGN, [item.algorithm for item in items], [ERROR] * len(items))
            raise
        self._count_items(SIGN, [item.algorithm for item in items],
                          [ERROR if isinstance(result, TsbError) else OK for result in results])
        return results

    def _count_items(self, operation: str, algorithms: Sequence[str], outcomes: Sequence[str]) -> None:
        """One count per (algorithm, outcome) of a batch, not one per item."""
        if len(algorithms) == 1:
            label = algorithm_label(algorithms[0])
            self._metrics.count(operation, KEY_FAMILIES.get(label, UNKNOWN_FAMILY), label, outcomes[0])
            return
        tally: dict[tuple[str, str], int] = {}
        for algorithm, outcome in zip(algorithms, outcomes, strict=True):
            tally[(algorithm, outcome)] = tally.get((algorithm, outcome), 0) + 1
        for (algorithm, outcome), n in tally.items():
            label = algorithm_label(algorithm)
            self._metrics.count(operation, KEY_FAMILIES.get(label, UNKNOWN_FAMILY), label, outcome, n)

    def _sign_batch(self, caller: Caller, items: Sequence[SignItem]) -> list[bytes | TsbError]:
        recorder = self.recorder(caller)
        results: list[bytes | TsbError | None] = [None] * len(items)
        passed: dict[tuple[str, str | None], KeyState] = {}
        usable: set[str] = set()  # keys whose use passed steps 2 and 4 without approvals
        groups: dict[tuple[str, str, SignatureType | None, bytes | None, SchnorrOptions | None], list[int]] = {}
        for index, item in enumerate(items):
            key = item.key
            try:
                state = passed.get((key.label, key.password))
                if state is None:
                    state = self._password_passed(caller, recorder, key)
                    passed[(key.label, key.password)] = state
            except TsbError as exc:
                results[index] = exc  # also recorded as checkKeyPassword
                continue
            try:
                if item.approvals or key.label not in usable:
                    self.check_key(key, state, private=True, approvals=item.approvals,
                                   approval_payload=item.payload)
                    if not item.approvals:
                        usable.add(key.label)  # the key state is pinned for the whole batch
            except TsbError as exc:
                results[index] = exc
                continue
            groups.setdefault((key.label, item.algorithm, item.signature_type, item.context, item.schnorr),
                              []).append(index)
        signing = self.services.signing
        try:
            for (label, algorithm, signature_type, context, schnorr), members in groups.items():
                try:
                    signed = signing.sign_many(label=label, algorithm=algorithm,
                                               payloads=[items[i].payload for i in members],
                                               signature_type=signature_type, context=context, schnorr=schnorr)
                except TsbError as exc:
                    signed = [exc] * len(members)
                for index, result in zip(members, signed, strict=True):
                    results[index] = result
        finally:  # an unexpected failure too: every item is accounted for, unsigned ones as error 1
            if recorder is not None:
                _record_signatures(recorder, items, results)
        return [result if result is not None else errors.HsmFailure("item not signed") for result in results]

    def verify(self, caller: Caller, item: VerifyItem) -> bool:
        """True when the signature is valid (a malformed signature is simply not valid)."""
        return self._verify(caller, item, None)

    def verify_batch(self, caller: Caller, items: Sequence[VerifyItem]) -> list[bool | TsbError]:
        """:meth:`verify` per item, each with its own result or TSB error; each (key, password)
        pair's password is checked once per batch."""
        passed: dict[tuple[str, str | None], KeyState] = {}
        results: list[bool | TsbError] = []
        for item in items:
            try:
                results.append(self._verify(caller, item, passed))
            except TsbError as exc:
                results.append(exc)
        return results

    def _verify(self, caller: Caller, item: VerifyItem, passed: dict[tuple[str, str | None], KeyState] | None) -> bool:
        return self._counted(VERIFY, item.algorithm, lambda: self._verify_uncounted(caller, item, passed))

    def _verify_uncounted(self, caller: Caller, item: VerifyItem,
                          passed: dict[tuple[str, str | None], KeyState] | None) -> bool:
        key = item.key
        recorder = self.recorder(caller)
        pair = (key.label, key.password)
        state = passed.get(pair) if passed is not None else None
        if state is None:
            state = self._password_passed(caller, recorder, key)
            if passed is not None:
                passed[pair] = state
        signing = self.services.signing

        def call() -> bool:
            self.check_key(key, state)
            return signing.verify(label=key.label, algorithm=item.algorithm, payload=item.payload,
                                  signature=item.signature, context=item.context)

        return _recorded(recorder, caller, VERIFY, key.label, call, mutating=False)

    # -- ciphers, key wrapping, HMAC -------------------------------------------------------------

    def encrypt(self, caller: Caller, key: KeyRef, *, algorithm: str, payload: bytes, aad: bytes | None,
                tag_length: int) -> Encrypted:
        operations = self.services.operations
        return self._use(caller, "encrypt", key, lambda: operations.encrypt(
            label=key.label, algorithm=algorithm, payload=payload, aad=aad, tag_length=tag_length), algorithm=algorithm)

    def decrypt(self, caller: Caller, key: KeyRef, *, algorithm: str, encrypted_payload: bytes, iv: bytes | None,
                aad: bytes | None, tag_length: int, approvals: Sequence[bytes] | None = None) -> bytes:
        operations = self.services.operations
        return self._use(caller, "decrypt", key, lambda: operations.decrypt(
            label=key.label, algorithm=algorithm, encrypted_payload=encrypted_payload, iv=iv, aad=aad,
            tag_length=tag_length), algorithm=algorithm, private=True, approvals=approvals,
            approval_payload=encrypted_payload)

    def wrap(self, caller: Caller, *, wrapping: KeyRef, target: KeyRef, method: str) -> bytes:
        """``target`` wrapped under ``wrapping``; both keys pass the gate (the target as an export)."""
        operations = self.services.operations

        def road() -> bytes:
            recorder = self.recorder(caller)
            wrapping_state = self._password_passed(caller, recorder, wrapping)
            target_state = self._password_passed(caller, recorder, target)

            def call() -> bytes:
                self.check_key(wrapping, wrapping_state)
                self.check_key(target, target_state, exporting=True)
                return operations.wrap(key_label=target.label, wrap_label=wrapping.label, method=method)

            return _recorded(recorder, caller, "wrapKey", wrapping.label, call, mutating=False)

        return self._counted("wrapKey", method, road)

    def unwrap(self, caller: Caller, unwrapping: KeyRef, *, wrapped: bytes, label: str, attributes: KeyAttributes,
               method: str, algorithm: str | None, policy_requested: bool = False, label_field: str = "label",
               approvals: Sequence[bytes] | None = None) -> SignedKey:
        """Unwrap into a new key ``label``; answers its attributes."""
        check_unwrap_target(label, label_field, policy_requested=policy_requested)
        if self._metadata.state(label).internal:
            raise InternalKey(f"key '{label}' is internal to hsmgate: no caller may create it")
        operations = self.services.operations
        return self._use(caller, "unwrapKey", unwrapping, lambda: operations.unwrap(
            wrapped=wrapped, label=label, attributes=attributes, unwrap_label=unwrapping.label, method=method,
            algorithm=algorithm), algorithm=method, private=True, approvals=approvals, approval_payload=wrapped,
            mutating=True)

    def hmac(self, caller: Caller, key: KeyRef, payload: bytes) -> bytes:
        operations = self.services.operations
        return self._use(caller, "hmac", key, lambda: operations.hmac(label=key.label, payload=payload),
                         algorithm=HMAC, key_type=HMAC)

    def hmac_verify(self, caller: Caller, key: KeyRef, payload: bytes, mac: bytes) -> bool:
        operations = self.services.operations
        return self._use(caller, "hmacVerify", key,
                         lambda: operations.hmac_verify(label=key.label, payload=payload, mac=mac),
                         algorithm=HMAC, key_type=HMAC)

    # -- ML-KEM ----------------------------------------------------------------------------------

    def encapsulate(self, caller: Caller, *, key: KeyRef | None, public_key: bytes | None) -> tuple[bytes, bytes]:
        """(ciphertext, shared secret) for a key of the partition or a caller's public key."""
        kem = self.services.kem
        if key is None:
            return self._counted("encapsulate", ML_KEM, lambda: self.run(
                caller, "encapsulate", None, lambda: kem.encapsulate(public_key=public_key)), ML_KEM)
        if public_key is not None:
            raise errors.ValidationFailed("exactly one of 'publicKey' and 'keyName' must be given")
        return self._use(caller, "encapsulate", key, lambda: kem.encapsulate(label=key.label), algorithm=ML_KEM,
                         key_type=ML_KEM)

    def decapsulate(self, caller: Caller, key: KeyRef, ciphertext: bytes,
                    approvals: Sequence[bytes] | None = None) -> bytes:
        kem = self.services.kem
        return self._use(caller, "synchronousDecapsulate", key,
                         lambda: kem.decapsulate(label=key.label, ciphertext=ciphertext), algorithm=ML_KEM,
                         key_type=ML_KEM, private=True, approvals=approvals, approval_payload=ciphertext)

    # -- file encryption (ECIES container) --------------------------------------------------------

    def file_encrypt(self, caller: Caller, key: KeyRef, *, source: BinaryIO, size: int) -> StreamedFile:
        """The container of a file for ``key`` (its public half; the password, when the key has
        one, is checked as for any use)."""
        files = self.services.files
        return self._use(caller, FILE_ENCRYPT, key, lambda: files.encrypt(label=key.label, source=source, size=size),
                         algorithm=ECIES, key_type=EC)

    def file_decrypt(self, caller: Caller, key: KeyRef, *, source: BinaryIO, size: int) -> StreamedFile:
        """The plaintext of a container, authenticated in full before it is returned; a private-key
        use, so an SKA key whose policy needs approvals is refused (401: the request carries none)."""
        files = self.services.files
        return self._use(caller, FILE_DECRYPT, key, lambda: files.decrypt(label=key.label, source=source, size=size),
                         algorithm=ECIES, key_type=EC, private=True)

    # -- certificates and timestamps -------------------------------------------------------------

    def certificate_request(self, caller: Caller, key: KeyRef, *, algorithm: str, subject: x509.Name,
                            profile: Profile) -> str:
        certificates = self.services.certificates
        return self._use(caller, "certificateRequest", key, lambda: certificates.request(
            label=key.label, algorithm=algorithm, subject=subject, profile=profile), algorithm=algorithm, private=True)

    def self_sign(self, caller: Caller, key: KeyRef, *, algorithm: str, common_name: str, profile: Profile) -> str:
        certificates = self.services.certificates
        return self._use(caller, "selfSignCertificate", key, lambda: certificates.self_sign(
            label=key.label, algorithm=algorithm, common_name=common_name, profile=profile), algorithm=algorithm,
            private=True)

    def sign_certificate(self, caller: Caller, key: KeyRef, *, algorithm: str, csr: str, common_name: str | None,
                         profile: Profile) -> str:
        certificates = self.services.certificates
        return self._use(caller, "signCertificate", key, lambda: certificates.sign_request(
            label=key.label, algorithm=algorithm, csr=csr, common_name=common_name, profile=profile),
            algorithm=algorithm, private=True)

    def rfc_timestamp(self, caller: Caller, *, payload: bytes, hash_name: str) -> bytes:
        """An RFC 3161 token signed by the configured timestamp key (which passes the gate too)."""
        timestamps = self.services.timestamps

        def call() -> bytes:
            if timestamps.key_name:
                key = KeyRef(timestamps.key_name)
                check_key_name(key.label)
                self.check_key(key, self._metadata.state(key.label), private=True)
            return timestamps.create(payload=payload, hash_name=hash_name)

        return self._counted("createRfcTimestamp", hash_name.upper().replace("-", ""),
                             lambda: self.run(caller, "createRfcTimestamp", timestamps.key_name, call))

    # -- export and random -----------------------------------------------------------------------

    def export(self, caller: Caller, key: KeyRef) -> ExportedKey:
        """Material of an extractable, non-sensitive key without policy."""
        transfer = self.services.transfer
        return self._use(caller, "exportKey", key, lambda: transfer.export_plain(key.label), algorithm=NO_ALGORITHM,
                         exporting=True)

    def random(self, caller: Caller, length: int) -> bytes:
        """``length`` bytes from the partition's random generator."""
        def call() -> bytes:
            with translated():
                return self.partition.generate_random(length)

        return self._counted("generateRandom", NO_ALGORITHM, lambda: self.run(caller, "generateRandom", None, call),
                             NO_ALGORITHM)


def check_unwrap_target(label: str, label_field: str, *, policy_requested: bool) -> None:
    """What an unwrap may create (synchronous, and an SKA request when it is submitted): a valid
    label, and no policy (Smart Key Attributes exist only on keys generated in the partition)."""
    if policy_requested:
        prefix = label_field.rpartition(".")[0]
        where = f"{prefix}.policy" if prefix else "policy"
        raise errors.UnsupportedOperation(f"'{where}': Smart Key Attributes are not supported on unwrapped keys")
    check_label(label, label_field)


#: Audit operation name of a signature (single, batch item or executed request), and of a verification.
SIGN = "synchronousSign"
VERIFY = "verifySignature"
#: Algorithm (and key family) labels of operations whose algorithm the key decides.
HMAC, ML_KEM, NO_ALGORITHM = "HMAC", "ML-KEM", "none"
#: File encryption: audit operation names, algorithm label and key family.
FILE_ENCRYPT, FILE_DECRYPT, ECIES, EC = "fileEncrypt", "synchronousFileDecrypt", "ECIES", "EC"
#: Every algorithm label an operation count may carry; anything else (a caller's free text) is ``other``.
ALGORITHM_LABELS: frozenset[str] = frozenset({*KEY_FAMILIES, *HASH_ALGORITHMS, HMAC, ML_KEM, ECIES, NO_ALGORITHM})


def algorithm_label(algorithm: str) -> str:
    """``algorithm`` when it is a name of the registries, else ``other`` (bounded label values)."""
    return algorithm if algorithm in ALGORITHM_LABELS else "other"


def _record_signatures(recorder: RequestAudit, items: Sequence[SignItem],
                       results: Sequence[bytes | TsbError | None]) -> None:
    """One record per key of a request's signatures (a single one or a batch), listing each of
    its signatures (``domain/audit/items.py``); a result still None (not signed) is error 1."""
    by_key: dict[str, list[AuditItem]] = {}
    for item, result in zip(items, results, strict=True):
        if isinstance(result, bytes):
            outcome, code = OK, None
        else:
            outcome, code = ERROR, result.code if isinstance(result, TsbError) else 1
        by_key.setdefault(item.key.label, []).append(
            AuditItem(item.index, item.algorithm, payload_digest(item.payload), outcome, code))
    for label, listed in by_key.items():
        outcome, code = audit_outcome(listed)
        recorder.record_outcome(SIGN, label, outcome, code, items=items_text(listed))


def _recorded(recorder: RequestAudit | None, caller: Caller, operation: str, label: str | None,
              call: Callable[[], T], *, mutating: bool) -> T:
    if recorder is None:
        return call()
    if mutating:
        return recorder.mutating(operation, label, call)
    return recorder.run(operation, label, call)
