"""Key administration for callers: create, list, describe, delete, import, change a password, read
an SKA key's address — each recorded in the audit log, each naming a key through the same password
step as the key-use gate (``domain/key_use.py``), and none of them touching an internal key (614).

Describing a key (its attributes, signed by the attestation key) stays open for internal keys too:
the attestation key's public key is how a client checks every attestation.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from hsmgate.domain import errors
from hsmgate.domain.certificates import CertificateService
from hsmgate.domain.key_capabilities import KeyCapabilities, key_capabilities
from hsmgate.domain.key_transfer import KeyImport, KeyTransferService
from hsmgate.domain.key_use import Caller, InternalKey, KeyRef, KeyUse
from hsmgate.domain.keys import (
    DeriveRequest,
    KeyAddress,
    KeyService,
    NewKey,
    SeedImport,
    SignedKey,
    check_label,
    key_info,
)
from hsmgate.domain.passwords import PasswordService
from hsmgate.store.certificates import CertificateRepository
from hsmgate.store.key_metadata import KeyMetadataRepository


@dataclass(frozen=True, slots=True)
class AttestationBundle:
    """What ``POST /v1/key/keyAttestation`` hands out: the key's signed attestation, the public key
    that verifies it (PEM) and that key's certificate chain (PEM, leaf first)."""

    key: SignedKey
    attestation_public_key_pem: bytes
    certificate_chain_pem: bytes


class KeyAdministration:
    """Caller-facing key management of one partition."""

    def __init__(self, *, keys: KeyService, gate: KeyUse, passwords: PasswordService,
                 transfer: KeyTransferService, metadata: KeyMetadataRepository,
                 certificates: CertificateService, certificate_store: CertificateRepository) -> None:
        self.keys = keys
        self._gate = gate
        self._passwords = passwords
        self._transfer = transfer
        self._metadata = metadata
        self._certificate_service = certificates
        self._certificates = certificate_store

    def refuse_internal(self, label: str) -> None:
        """614 when ``label`` names a key hsmgate keeps for itself (also before it exists)."""
        if self._metadata.state(label).internal:
            raise InternalKey(f"key '{label}' is internal to hsmgate: no caller may create, change or delete it")

    def create(self, caller: Caller, request: NewKey, password: str | None) -> SignedKey:
        """A new key (with its password hash stored before it exists)."""
        def call() -> SignedKey:
            check_label(request.label)
            self.refuse_internal(request.label)
            with self._passwords.protecting_new_key(request.label, password):
                return self.keys.create(request)

        return self._gate.run(caller, "createKey", request.label, call, mutating=True)

    def import_seed(self, caller: Caller, request: SeedImport, password: str | None) -> SignedKey:
        """A derivation master from a caller's seed (``POST /v1/importedKey``)."""
        def call() -> SignedKey:
            check_label(request.label)
            self.refuse_internal(request.label)
            with self._passwords.protecting_new_key(request.label, password):
                return self.keys.import_seed(request)

        return self._gate.run(caller, "importSeed", request.label, call, mutating=True)

    def derive(self, caller: Caller, master: KeyRef, request: DeriveRequest) -> SignedKey:
        """Persist a master's child (``POST /v1/derivedKey``): the master's password is checked
        as for any use of it; the child has no password of its own (the master's applies)."""
        self._gate.check_password(caller, master)

        def call() -> SignedKey:
            self.refuse_internal(request.master)
            return self.keys.derive(request)

        return self._gate.run(caller, "deriveKey", f"{request.master}/{request.path}", call, mutating=True)

    def labels(self, caller: Caller) -> list[str]:
        return self._gate.run(caller, "getKeys", None, self.keys.labels)

    def describe(self, caller: Caller, key: KeyRef) -> SignedKey:
        self._gate.check_password(caller, key)
        return self._gate.run(caller, "getKeyAttributes", key.label, lambda: self.keys.describe(key.label))

    def capabilities(self, caller: Caller, key: KeyRef) -> KeyCapabilities:
        """What the key can do on its token (``key_capabilities.py``); readable like :meth:`describe`."""
        self._gate.check_password(caller, key)

        def call() -> KeyCapabilities:
            partition = self.keys.partition
            return key_capabilities(key_info(partition, key.label), partition.capabilities())

        return self._gate.run(caller, "getKeyCapabilities", key.label, call)

    def attestation_bundle(self, caller: Caller, key: KeyRef) -> AttestationBundle:
        """The attestation of a key with what a verifier needs besides it (the attestation key's
        public key and certificate); readable for internal keys too, as :meth:`describe`."""
        self._gate.check_password(caller, key)

        def call() -> AttestationBundle:
            signed = self.keys.describe(key.label)
            certificate = self._certificate_service.attestation_certificate(signed.attestation_key_name)
            public = certificate.public_key().public_bytes(serialization.Encoding.PEM,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo)
            return AttestationBundle(signed, public, certificate.public_bytes(serialization.Encoding.PEM))

        return self._gate.run(caller, "getKeyAttestation", key.label, call)

    def delete(self, caller: Caller, key: KeyRef) -> None:
        """Destroy a destroyable key, with its certificate."""
        self._gate.check_password(caller, key)

        def call() -> None:
            self.refuse_internal(key.label)
            self.keys.delete(key.label)
            self._certificates.remove(key.label)

        self._gate.run(caller, "deleteKey", key.label, call, mutating=True)

    def import_plain(self, caller: Caller, request: KeyImport) -> SignedKey:
        def call() -> SignedKey:
            check_label(request.label)
            self.refuse_internal(request.label)
            return self._transfer.import_plain(request)

        return self._gate.run(caller, "importKey", request.label, call, mutating=True)

    def change_password(self, caller: Caller, label: str, password: str | None, new_password: str | None) -> None:
        """Change (or with an empty ``new_password`` remove) the password of a modifiable key."""
        def call() -> None:
            self.refuse_internal(label)
            self._passwords.change(label, password, new_password)

        self._gate.run(caller, "changeKeyPassword", label, call, mutating=True)

    def change_attributes(self, caller: Caller) -> None:
        """``PATCH /v1/key/changeAttributes``: refused with 611, recorded like any refused call.

        Refused rather than guessed (docs/tsb-deviations.md): the only source (a client's README)
        says it renames a key, and the TSB documents that attributes may only be hardened, but no
        public source shows the request body, so no field could be read with confidence — and a
        wrong guess would leave a client believing a key was renamed or hardened when it was not."""
        def refuse() -> None:
            raise errors.UnsupportedOperation(
                "PATCH /v1/key/changeAttributes is not supported by hsmgate: its request body is not public, so "
                "neither a new label nor hardened attributes can be read from it; create the key under its final "
                "label and with its final attributes (POST /v1/key)")

        self._gate.run(caller, "changeAttributes", None, refuse)

    def import_certificate(self, caller: Caller, label: str, data: bytes) -> str:
        """Attach a certificate to a key (its public key must be the key's); answers its PEM."""
        def call() -> str:
            self.refuse_internal(label)
            return self._certificate_service.import_certificate(label, data)

        return self._gate.run(caller, "importCertificate", label, call, mutating=True)

    def certificate(self, caller: Caller, label: str) -> str:
        """The PEM certificate of a key."""
        return self._gate.run(caller, "getCertificate", label, lambda: self._certificate_service.get(label))

    def delete_certificate(self, caller: Caller, label: str) -> None:
        def call() -> None:
            self.refuse_internal(label)
            self._certificate_service.delete(label)

        self._gate.run(caller, "deleteCertificate", label, call, mutating=True)

    def address(self, caller: Caller, key: KeyRef) -> KeyAddress:
        """The address of an SKA key created with ``addressFormat`` (630 without policy)."""
        self._gate.check_password(caller, key)

        def call() -> KeyAddress:
            self.refuse_internal(key.label)
            return self.keys.address(key.label)

        return self._gate.run(caller, "getKeyAddress", key.label, call)
