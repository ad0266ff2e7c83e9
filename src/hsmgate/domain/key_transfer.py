"""Plain key import and export (reference §3.1, §4.8).

Import accepts DER, or PEM (armour in the JSON string, or the whole PEM file base64-encoded):
a private key as PKCS#8 or — for RSA — PKCS#1 (also SEC 1 for EC, as ``cryptography`` reads them),
a public key as SubjectPublicKeyInfo, a secret key as raw bytes, a certificate as X.509. The
backend receives the canonical form: PKCS#8 DER, SPKI DER or raw bytes. Rules of §4.8:

* a symmetric ``algorithm`` takes only ``secretKey``; an asymmetric one never ``secretKey``;
  ``certificate`` must be empty when ``publicKey`` is given;
* a private or secret key under an existing label → 608;
* a public key or certificate alone under an existing label replaces an imported public key; a
  certificate whose public key is that of an existing key pair is attached to it; anything else → 608;
* imported keys are attested with ``creation="imported"`` and are never ``alwaysSensitive`` or
  ``neverExtractable``.

Export returns key material only for keys that are ``extractable`` and not ``sensitive`` (SKA keys
do not exist in hsmgate); anything else → 701 ``KEY_FUNCTION_NOT_PERMITTED`` (HTTP 400), the
answer of every attribute refusal. A public key alone is always exportable.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from hsmgate.domain import errors
from hsmgate.domain.algorithms import CURVES
from hsmgate.domain.hsm_errors import KEY_FUNCTION_NOT_PERMITTED, translated
from hsmgate.domain.keys import KeyService, SignedKey, check_label, key_info, resolve_algorithm
from hsmgate.hsm.base import ExportedKey, KeyAttributes, KeyNotFound, KeyType, Partition
from hsmgate.store.certificates import CertificateRepository
from hsmgate.store.key_metadata import KeyMetadataRepository

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


class ParsingKeyFailed(errors.TsbError):
    code = 407


class ParsingCertificateFailed(errors.TsbError):
    code = 409


class InvalidCertificate(errors.TsbError):
    code = 402


@dataclass(frozen=True, slots=True)
class KeyImport:
    """A ``KeyImportDto`` after wire validation; byte fields are the decoded base64."""

    label: str
    algorithm: str
    attributes: KeyAttributes | None
    private_key: bytes | None = None
    public_key: bytes | None = None
    secret_key: bytes | None = None
    certificate: bytes | None = None
    #: the request asked for a policy / an ``addressFormat``: refused, SKA keys are generated in
    #: the partition (611 / 630)
    policy_requested: bool = False
    address_format_requested: bool = False


def der_of(data: bytes) -> bytes:
    """DER bytes from DER, or from a PEM file that was base64-encoded as a whole."""
    match = _PEM_BLOCK.search(data)
    if match is None:
        return data
    try:
        return base64.b64decode(re.sub(rb"\s+", b"", match.group(2)), validate=True)
    except (binascii.Error, ValueError):
        return data


def load_certificate(data: bytes) -> x509.Certificate:
    """An X.509 certificate from DER or PEM; 409 when it is none."""
    try:
        return x509.load_der_x509_certificate(der_of(data))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ParsingCertificateFailed("'certificate' is not an X.509 certificate (DER or PEM)") from None


def key_type_of(key: object) -> KeyType | None:
    """The hsmgate key type of a ``cryptography`` key object, if it has one."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return KeyType.RSA
    if isinstance(key, dsa.DSAPrivateKey | dsa.DSAPublicKey):
        return KeyType.DSA
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return KeyType.EC
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey | ed448.Ed448PrivateKey
                  | ed448.Ed448PublicKey):
        return KeyType.ED
    return None


def curve_oid_of(key: object) -> str | None:
    """The curveOid (§4.4) of an EC or Edwards key; None for other keys or unknown curves."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "1.3.101.112"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "1.3.101.113"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        for oid in CURVES:
            try:
                if ec.get_curve_for_oid(x509.ObjectIdentifier(oid)).name == key.curve.name:
                    return oid
            except LookupError:
                continue
    return None


def spki_of(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class KeyTransferService:
    """Import and export of plain key material for one partition."""

    def __init__(self, partition: Partition, *, keys: KeyService, metadata: KeyMetadataRepository,
                 certificates: CertificateRepository, clock: Callable[[], datetime] | None = None) -> None:
        self.partition = partition
        self._keys = keys
        self._metadata = metadata
        self._certificates = certificates
        self._clock = clock or (lambda: datetime.now(UTC))

    def import_plain(self, request: KeyImport) -> SignedKey:
        if request.policy_requested:
            raise errors.UnsupportedOperation("'policy': Smart Key Attributes are not supported on imported keys")
        if request.address_format_requested:
            raise errors.InvalidAddressOnNonSkaKey("'addressFormat' is only allowed on keys with a policy (SKA keys)")
        check_label(request.label)
        key_type = resolve_algorithm(request.algorithm, None).key_type
        _check_fields(request, key_type)
        capabilities = self.partition.capabilities()
        if key_type not in capabilities.key_import:
            raise errors.UnsupportedOperation(f"importing {key_type} keys is not supported by the "
                                              f"{capabilities.backend} backend")
        private = _parse_private(request.private_key, key_type) if request.private_key else None
        certificate = load_certificate(request.certificate) if request.certificate else None
        public_der = self._public_der(request, key_type, private, certificate)
        public_only = key_type.is_asymmetric and private is None
        attributes = request.attributes
        if attributes is None:
            if not public_only:
                raise errors.ValidationFailed("'attributes' must not be null")
            attributes = KeyAttributes(encrypt=True, verify=True, wrap=True, sensitive=False)
        elif not public_only and not (attributes.decrypt or attributes.sign or attributes.unwrap):
            raise errors.KeyAttributesInvalid("at least one of 'decrypt', 'sign' or 'unwrap' must be true")

        if public_only and certificate is not None and self._attach_to_key_pair(request.label, public_der, certificate):
            return self._keys.describe(request.label)
        replacing = public_only and self._exists(request.label)
        with translated():
            self.partition.import_key(
                request.label, key_type=key_type, attributes=attributes,
                private_key=_pkcs8(private) if private is not None else None,
                public_key=public_der if public_only else None,
                secret_key=request.secret_key if not key_type.is_asymmetric else None,
                curve_oid=curve_oid_of(private) if private is not None else None,
            )
        now = self._now()
        if replacing:  # a new public key under the label: new times, no old certificate
            self._metadata.forget(request.label)
            self._certificates.remove(request.label)
        self._metadata.set_origin(request.label, "imported", public_only=public_only, when=now)
        if certificate is not None:
            self._certificates.put(request.label, certificate.public_bytes(serialization.Encoding.DER), now)
        return self._keys.describe(request.label)

    def export_plain(self, label: str) -> ExportedKey:
        """Material of an extractable, non-sensitive key (701 otherwise); the key-use gate has
        checked its password and policy."""
        info = key_info(self.partition, label)
        _origin, public_only = self._metadata.origin(label)
        attributes = info.attributes
        if not public_only and (not attributes.extractable or attributes.sensitive):
            raise errors.TsbError(
                f"{KEY_FUNCTION_NOT_PERMITTED}: key '{label}' can only be exported when it is extractable "
                f"and not sensitive", code=701, status=400,
            )
        with translated():
            return self.partition.export_key(label)

    # -- helpers --------------------------------------------------------------------------------

    def _public_der(self, request: KeyImport, key_type: KeyType, private: object | None,
                    certificate: x509.Certificate | None) -> bytes | None:
        """The SPKI of the imported key, checked for agreement between the parts given."""
        if not key_type.is_asymmetric:
            return None
        candidates: list[tuple[str, bytes]] = []
        if private is not None:
            candidates.append(("privateKey", spki_of(private.public_key())))  # type: ignore[attr-defined]
        if request.public_key:
            public = _parse_public(request.public_key, key_type)
            candidates.append(("publicKey", spki_of(public)))
        if certificate is not None:
            try:
                cert_key = certificate.public_key()
            except (ValueError, UnsupportedAlgorithm):
                raise InvalidCertificate("the certificate's public key cannot be read") from None
            if key_type_of(cert_key) is not key_type:
                raise InvalidCertificate(f"the certificate holds a {key_type_of(cert_key) or 'foreign'} key, "
                                         f"not {key_type}")
            candidates.append(("certificate", spki_of(cert_key)))
        first_name, first = candidates[0]
        for name, der in candidates[1:]:
            if der != first:
                error = InvalidCertificate if name == "certificate" else ParsingKeyFailed
                raise error(f"'{name}' does not hold the public key of '{first_name}'")
        return first

    def _attach_to_key_pair(self, label: str, public_der: bytes | None, certificate: x509.Certificate) -> bool:
        """A certificate alone for an existing key pair with the same public key: attach it."""
        try:
            info = self.partition.get(label)
        except KeyNotFound:
            return False
        _origin, public_only = self._metadata.origin(label)
        if public_only or info.public_key != public_der:
            return False
        self._certificates.put(label, certificate.public_bytes(serialization.Encoding.DER), self._now())
        return True

    def _exists(self, label: str) -> bool:
        try:
            self.partition.get(label)
            return True
        except KeyNotFound:
            return False

    def _now(self) -> datetime:
        return self._clock().replace(microsecond=0)


def _check_fields(request: KeyImport, key_type: KeyType) -> None:
    if key_type.is_asymmetric:
        if request.secret_key:
            raise errors.ValidationFailed(f"'secretKey' must be empty for an asymmetric key ({key_type})")
        if request.public_key and request.certificate:
            raise errors.ValidationFailed("'certificate' must be empty when 'publicKey' is given")
        if not (request.private_key or request.public_key or request.certificate):
            raise errors.ValidationFailed("give 'privateKey', 'publicKey' or 'certificate' to import")
    else:
        if request.private_key or request.public_key or request.certificate:
            raise errors.ValidationFailed(
                f"'privateKey', 'publicKey' and 'certificate' must be empty for a symmetric key ({key_type})")
        if not request.secret_key:
            raise errors.ValidationFailed("'secretKey' must not be empty")


def _parse_private(data: bytes, key_type: KeyType) -> object:
    try:
        key = serialization.load_der_private_key(der_of(data), password=None)
    except TypeError:
        raise ParsingKeyFailed("'privateKey' is encrypted; import it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ParsingKeyFailed("'privateKey' is not a DER or PEM private key (PKCS#8, or PKCS#1 for RSA)") from None
    found = key_type_of(key)
    if found is not key_type:
        raise errors.InvalidKeyType(f"'privateKey' is a {found or 'foreign'} key, not {key_type}")
    if found in (KeyType.EC, KeyType.ED) and curve_oid_of(key) is None:
        raise errors.InvalidKeyType("'privateKey' is on a curve hsmgate does not support")
    return key


def _parse_public(data: bytes, key_type: KeyType) -> object:
    try:
        key = serialization.load_der_public_key(der_of(data))
    except (ValueError, UnsupportedAlgorithm):
        raise ParsingKeyFailed("'publicKey' is not a DER or PEM SubjectPublicKeyInfo") from None
    found = key_type_of(key)
    if found is not key_type:
        raise errors.InvalidKeyType(f"'publicKey' is a {found or 'foreign'} key, not {key_type}")
    if found in (KeyType.EC, KeyType.ED) and curve_oid_of(key) is None:
        raise errors.InvalidKeyType("'publicKey' is on a curve hsmgate does not support")
    return key


def _pkcs8(private: object) -> bytes:
    return private.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
