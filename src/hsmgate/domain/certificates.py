"""Certificates of keys (reference §3.5, §5.7): CSRs, self-signed and CA-issued certificates.

Every signature is made *inside the backend*: ``cryptography``'s X.509 builders are handed a
private-key object whose ``sign`` calls :meth:`Partition.sign` (:func:`backend_private_key`), so
non-extractable keys can carry certificates and no key material ever leaves the partition.

What the certificates contain (the reference's observations, §5.7): keyUsage and extendedKeyUsage
as requested, both critical; basicConstraints critical, ``CA:TRUE`` with ``certificateAuthority``,
else ``CA:FALSE``; subjectKeyIdentifier; authorityKeyIdentifier (the issuer's SKI); a random
159-bit serial; validity from now (second precision) for ``validity`` days. CSRs carry keyUsage
and extendedKeyUsage as requested extensions. A CSR answer uses the armour
``-----BEGIN NEW CERTIFICATE REQUEST-----`` with 64-character lines; certificates are PEM with a
single-line body (both as the TSB prints them). Certificates are stored in the state database,
one per key label; a stored certificate whose public key is no longer the key's is ignored.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hsmgate.domain import errors
from hsmgate.domain.algorithms import CERTIFICATE_SIGNATURE_ALGORITHMS, SIGNATURE_ALGORITHMS
from hsmgate.domain.hsm_errors import translated
from hsmgate.domain.key_transfer import InvalidCertificate, der_of, load_certificate
from hsmgate.domain.keys import key_info
from hsmgate.domain.text import character_name
from hsmgate.hsm.base import HashAlg, KeyInfo, Partition, SignMechanism, SignScheme
from hsmgate.store.certificates import CertificateRepository

MAX_VALIDITY_DAYS = 36525

#: ``keyUsage`` wire values → the ``x509.KeyUsage`` argument they set.
KEY_USAGES: dict[str, str] = {
    "DIGITAL_SIGNATURE": "digital_signature", "CONTENT_COMMITMENT": "content_commitment",
    "KEY_ENCIPHERMENT": "key_encipherment", "DATA_ENCIPHERMENT": "data_encipherment",
    "KEY_AGREEMENT": "key_agreement", "KEY_CERT_SIGN": "key_cert_sign", "CRL_SIGN": "crl_sign",
    "ENCIPHER_ONLY": "encipher_only", "DECIPHER_ONLY": "decipher_only",
}
#: ``extendedKeyUsage`` wire values → OIDs.
EXTENDED_KEY_USAGES: dict[str, x509.ObjectIdentifier] = {
    "ANY_EXTENDED_KEY_USAGE": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "SERVER_AUTH": ExtendedKeyUsageOID.SERVER_AUTH, "CLIENT_AUTH": ExtendedKeyUsageOID.CLIENT_AUTH,
    "CODE_SIGNING": ExtendedKeyUsageOID.CODE_SIGNING, "EMAIL_PROTECTION": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "TIME_STAMPING": ExtendedKeyUsageOID.TIME_STAMPING, "OCSP_SIGNING": ExtendedKeyUsageOID.OCSP_SIGNING,
}
#: ``standardCertificateAttributes`` fields (wire names) → subject attribute OIDs, in DN order.
SUBJECT_ATTRIBUTES: dict[str, x509.ObjectIdentifier] = {
    "country": NameOID.COUNTRY_NAME, "stateOrProvinceName": NameOID.STATE_OR_PROVINCE_NAME,
    "locality": NameOID.LOCALITY_NAME, "organizationName": NameOID.ORGANIZATION_NAME,
    "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
    "organizationUnitName": NameOID.ORGANIZATIONAL_UNIT_NAME, "title": NameOID.TITLE,
    "surname": NameOID.SURNAME, "givenName": NameOID.GIVEN_NAME, "initials": NameOID.INITIALS,
    "pseudonym": NameOID.PSEUDONYM, "generationQualifier": NameOID.GENERATION_QUALIFIER,
    "commonName": NameOID.COMMON_NAME, "email": NameOID.EMAIL_ADDRESS,
}

_WIRE_NAME_OF_OID = {oid: field for field, oid in SUBJECT_ATTRIBUTES.items()}


class CsrInvalidFormat(errors.TsbError):
    code = 628


class InvalidCertificateRequest(errors.TsbError):
    code = 411


@dataclass(frozen=True, slots=True)
class Profile:
    """What a certificate or CSR asserts besides its subject."""

    validity_days: int
    key_usage: tuple[str, ...] = ()
    extended_key_usage: tuple[str, ...] = ()
    certificate_authority: bool = False


#: The attestation key's self-signed certificate: it signs attestations (digitalSignature), not
#: certificates (CA:FALSE); valid ten years, re-issued at start-up once expired.
ATTESTATION_CERTIFICATE_PROFILE = Profile(3650, ("DIGITAL_SIGNATURE",))


def check_name_value(value: str, field: str) -> None:
    """600 for a certificate name value with a control character. A NUL in a common name is the
    classic way to make ``good.example\0.evil.example`` read as ``good.example`` to C code that
    stops at the NUL; line feeds and escapes forge lines where names are printed. (Format
    characters such as ZERO WIDTH NON-JOINER stay allowed: personal names need them.)"""
    for char in value:
        if char < "\x20" or "\x7f" <= char < "\xa0":
            raise errors.ValidationFailed(f"'{field}' must not contain control characters (found {character_name(char)})")


def subject_name(attributes: dict[str, str | None], field_prefix: str = "standardCertificateAttributes.") -> x509.Name:
    """An X.500 name from ``standardCertificateAttributes`` (wire names); 600 on bad values,
    naming the field as ``field_prefix`` + the wire name."""
    if not attributes.get("commonName"):
        raise errors.ValidationFailed(f"'{field_prefix}commonName' must not be empty")
    rdns = []
    for field, oid in SUBJECT_ATTRIBUTES.items():
        value = attributes.get(field)
        if value:
            check_name_value(value, f"{field_prefix}{field}")
            try:
                rdns.append(x509.NameAttribute(oid, value))
            except ValueError as exc:
                raise errors.ValidationFailed(f"'{field_prefix}{field}' {exc}") from None
    return x509.Name(rdns)


# -- the backend key as a cryptography private key ---------------------------------------------


def _hash_alg(algorithm: hashes.HashAlgorithm) -> HashAlg:
    try:
        return HashAlg(algorithm.name.replace("-", "_"))
    except ValueError:
        raise errors.UnsupportedOperation(f"hash {algorithm.name} is not supported") from None


def _mechanism(scheme: SignScheme, algorithm: hashes.HashAlgorithm | Prehashed | None) -> SignMechanism:
    if algorithm is None:
        return SignMechanism(scheme)
    if isinstance(algorithm, Prehashed):
        return SignMechanism(scheme, _hash_alg(algorithm._algorithm), prehashed=True)
    return SignMechanism(scheme, _hash_alg(algorithm))


class _BackendKey:
    """Shared part of the adapters: the partition, the key's label and its public key."""

    def __init__(self, partition: Partition, label: str, public_key: object) -> None:
        self._partition = partition
        self._label = label
        self._public = public_key

    def _sign(self, mechanism: SignMechanism, data: bytes) -> bytes:
        with translated():
            return self._partition.sign(self._label, mechanism, data)

    def public_key(self):  # type: ignore[no-untyped-def]
        return self._public

    def private_bytes(self, *_args: object) -> bytes:
        raise TypeError("a key inside the backend cannot be serialised")

    def __copy__(self):  # type: ignore[no-untyped-def]
        return self

    def __deepcopy__(self, _memo: object):  # type: ignore[no-untyped-def]
        return self


class BackendRsaKey(_BackendKey, rsa.RSAPrivateKey):
    """An RSA key inside the partition: PKCS#1 v1.5 and PSS (salt = digest length) signatures."""

    def sign(self, data: bytes, padding: padding.AsymmetricPadding,
             algorithm: hashes.HashAlgorithm | Prehashed) -> bytes:
        scheme = SignScheme.RSA_PSS if padding.name == "EMSA-PSS" else SignScheme.RSA_PKCS1V15
        return self._sign(_mechanism(scheme, algorithm), data)

    @property
    def key_size(self) -> int:
        return self._public.key_size  # type: ignore[attr-defined]

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        raise TypeError("use the partition to decrypt")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise TypeError("a key inside the backend has no readable numbers")


class BackendEcKey(_BackendKey, ec.EllipticCurvePrivateKey):
    """An EC key inside the partition: ECDSA signatures (DER, as X.509 wants them)."""

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        return self._sign(_mechanism(SignScheme.ECDSA, signature_algorithm.algorithm), data)  # type: ignore[attr-defined]

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve  # type: ignore[attr-defined]

    @property
    def key_size(self) -> int:
        return self._public.key_size  # type: ignore[attr-defined]

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise TypeError("ECDH is not offered through this adapter")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise TypeError("a key inside the backend has no readable numbers")


class BackendEd25519Key(_BackendKey, ed25519.Ed25519PrivateKey):
    def sign(self, data: bytes) -> bytes:
        return self._sign(SignMechanism(SignScheme.EDDSA), data)

    def private_bytes_raw(self) -> bytes:
        raise TypeError("a key inside the backend cannot be serialised")


class BackendEd448Key(_BackendKey, ed448.Ed448PrivateKey):
    def sign(self, data: bytes) -> bytes:
        return self._sign(SignMechanism(SignScheme.EDDSA), data)

    def private_bytes_raw(self) -> bytes:
        raise TypeError("a key inside the backend cannot be serialised")


def backend_private_key(partition: Partition, info: KeyInfo) -> _BackendKey:
    """A ``cryptography`` private key whose signatures are made by ``partition`` with key ``info``."""
    public = serialization.load_der_public_key(info.public_key or b"")
    if isinstance(public, rsa.RSAPublicKey):
        return BackendRsaKey(partition, info.label, public)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return BackendEcKey(partition, info.label, public)
    if isinstance(public, ed25519.Ed25519PublicKey):
        return BackendEd25519Key(partition, info.label, public)
    if isinstance(public, ed448.Ed448PublicKey):
        return BackendEd448Key(partition, info.label, public)
    raise errors.AlgorithmNotSupportedByKey(f"key '{info.label}' ({info.key_type}) cannot sign certificates")


# -- the service ---------------------------------------------------------------------------


class CertificateService:
    """CSRs, self-signed and CA-issued certificates for the keys of one partition."""

    def __init__(self, partition: Partition, *, repository: CertificateRepository,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.partition = partition
        self._repo = repository
        self._clock = clock or (lambda: datetime.now(UTC))

    def request(self, *, label: str, algorithm: str, subject: x509.Name, profile: Profile) -> str:
        """A PKCS#10 CSR signed by the key; the key also gets a self-signed certificate with the
        same subject when it has none yet (as keytool does)."""
        info, signer, hash_ = self._signer(label, algorithm)
        _check_profile(profile)
        builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
        for extension, critical in _usage_extensions(profile):
            builder = builder.add_extension(extension, critical=critical)
        csr = builder.sign(signer, hash_)  # type: ignore[arg-type]
        if self.certificate_of(info) is None:
            self._store(label, self._issue(subject=subject, public_key=signer.public_key(), issuer=None,
                                           signer=signer, hash_=hash_, profile=profile))
        pem = csr.public_bytes(serialization.Encoding.PEM).decode()
        return pem.replace("CERTIFICATE REQUEST-----", "NEW CERTIFICATE REQUEST-----")

    def self_sign(self, *, label: str, algorithm: str, common_name: str, profile: Profile) -> str:
        """A self-signed certificate, attached to the key (replacing any it had)."""
        _info, signer, hash_ = self._signer(label, algorithm)
        _check_profile(profile)
        subject = subject_name({"commonName": common_name}, field_prefix="")
        certificate = self._issue(subject=subject, public_key=signer.public_key(), issuer=None, signer=signer,
                                  hash_=hash_, profile=profile)
        self._store(label, certificate)
        return certificate_pem(certificate)

    def sign_request(self, *, label: str, algorithm: str, csr: str, common_name: str | None,
                     profile: Profile) -> str:
        """A certificate for the CSR's key, issued by key ``label`` under its certificate."""
        info, signer, hash_ = self._signer(label, algorithm)
        _check_profile(profile)
        request = _load_csr(csr)
        issuer = self.certificate_of(info)
        if issuer is None:
            raise InvalidCertificate(f"key '{label}' has no certificate to issue under; self-sign or import one first")
        subject = request.subject
        _check_csr_names(request)
        if common_name:
            check_name_value(common_name, "commonName")
            others = [a for a in subject if a.oid != NameOID.COMMON_NAME]
            subject = x509.Name([*others, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        try:
            public_key = request.public_key()
            san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidCertificateRequest("the CSR's public key or extensions cannot be read") from None
        certificate = self._issue(subject=subject, public_key=public_key, issuer=issuer, signer=signer,
                                  hash_=hash_, profile=profile, san=san)
        return certificate_pem(certificate)

    def import_certificate(self, label: str, data: bytes) -> str:
        """Attach a certificate to a key; its public key must be the key's (402 otherwise)."""
        certificate = load_certificate(data)
        info = key_info(self.partition, label)
        if not _matches(certificate, info):
            raise InvalidCertificate(f"the certificate's public key is not that of key '{label}'")
        self._store(label, certificate)
        return certificate_pem(certificate)

    def get(self, label: str) -> str:
        info = key_info(self.partition, label)
        certificate = self.certificate_of(info)
        if certificate is None:
            raise errors.KeyNotFound(f"key '{label}' has no certificate")
        return certificate_pem(certificate)

    def delete(self, label: str) -> None:
        if not self._repo.remove(label):
            raise errors.KeyNotFound(f"key '{label}' has no certificate")

    def forget(self, label: str) -> None:
        """Drop the certificate of a deleted key (no error when it had none)."""
        self._repo.remove(label)

    def certificate_of(self, info: KeyInfo) -> x509.Certificate | None:
        """The key's stored certificate, if it still certifies the key's public key."""
        der = self._repo.get(info.label)
        if der is None:
            return None
        certificate = x509.load_der_x509_certificate(der)
        return certificate if _matches(certificate, info) else None

    def issue_self_signed(self, info: KeyInfo, *, algorithm: str, subject: x509.Name, profile: Profile) -> x509.Certificate:
        """Self-sign and store a certificate for ``info`` without a password check (hsmgate's own
        use, e.g. the RFC 3161 timestamp key)."""
        _info, signer, hash_ = self._signer(info.label, algorithm)
        certificate = self._issue(subject=subject, public_key=signer.public_key(), issuer=None, signer=signer,
                                  hash_=hash_, profile=profile)
        self._store(info.label, certificate)
        return certificate

    def attestation_certificate(self, label: str) -> x509.Certificate:
        """The certificate of the partition's attestation key ``label``: self-signed, issued when
        the key has none (or its certificate expired or no longer certifies the key) and stored like
        every key's certificate. A Primus HSM's attestation key is certified by the device's
        certificate chain; hsmgate's has no issuer above it, so this certificate is its own root."""
        info = key_info(self.partition, label)
        current = self.certificate_of(info)
        if current is not None and current.not_valid_after_utc > self._clock():
            return current
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hsmgate"),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.partition.name),
                             x509.NameAttribute(NameOID.COMMON_NAME, label)])
        return self.issue_self_signed(info, algorithm="SHA256_WITH_RSA", subject=subject,
                                      profile=ATTESTATION_CERTIFICATE_PROFILE)

    # -- helpers --------------------------------------------------------------------------------

    def _signer(self, label: str, algorithm: str) -> tuple[KeyInfo, _BackendKey, hashes.HashAlgorithm | None]:
        if algorithm not in CERTIFICATE_SIGNATURE_ALGORITHMS:
            raise errors.ValidationFailed(f"Value '{algorithm}' is not valid for field 'signatureAlgorithm'")
        row = SIGNATURE_ALGORITHMS[algorithm]
        info = key_info(self.partition, label)
        if info.key_type is not row.key_type:
            raise errors.AlgorithmNotSupportedByKey(
                f"signatureAlgorithm {algorithm} is not supported by key '{label}' ({info.key_type})"
            )
        mechanism = SignMechanism(row.scheme, row.hash)
        capabilities = self.partition.capabilities()
        if not capabilities.can_sign(info.key_type, mechanism):
            raise errors.UnsupportedOperation(
                f"signatureAlgorithm {algorithm} is not supported by the {capabilities.backend} backend")
        hash_ = None if row.hash is None else _HASHES[row.hash]()
        return info, backend_private_key(self.partition, info), hash_

    def _issue(self, *, subject: x509.Name, public_key: object, issuer: x509.Certificate | None, signer: _BackendKey,
               hash_: hashes.HashAlgorithm | None, profile: Profile,
               san: x509.SubjectAlternativeName | None = None) -> x509.Certificate:
        now = self._clock().replace(microsecond=0)
        ski = x509.SubjectKeyIdentifier.from_public_key(public_key)  # type: ignore[arg-type]
        if issuer is None:
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
            issuer_name = subject
        else:
            issuer_name = issuer.subject
            try:
                issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
                aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)
            except x509.ExtensionNotFound:
                aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer_name).public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=profile.validity_days))
            .add_extension(x509.BasicConstraints(ca=profile.certificate_authority, path_length=None), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(aki, critical=False)
        )
        for extension, critical in _usage_extensions(profile):
            builder = builder.add_extension(extension, critical=critical)
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hash_)  # type: ignore[arg-type]

    def _store(self, label: str, certificate: x509.Certificate) -> None:
        self._repo.put(label, certificate.public_bytes(serialization.Encoding.DER), self._clock().replace(microsecond=0))


_HASHES: dict[HashAlg, type[hashes.HashAlgorithm]] = {
    HashAlg.SHA1: hashes.SHA1, HashAlg.SHA224: hashes.SHA224, HashAlg.SHA256: hashes.SHA256,
    HashAlg.SHA384: hashes.SHA384, HashAlg.SHA512: hashes.SHA512,
}


def certificate_pem(certificate: x509.Certificate) -> str:
    """PEM with the body on one line, as the TSB returns certificates."""
    body = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def _matches(certificate: x509.Certificate, info: KeyInfo) -> bool:
    if info.public_key is None:
        return False
    try:
        spki = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return spki == info.public_key


def _check_profile(profile: Profile) -> None:
    if not 1 <= profile.validity_days <= MAX_VALIDITY_DAYS:
        raise errors.ValidationFailed(f"'validity' must be 1 to {MAX_VALIDITY_DAYS} days")
    flags = {KEY_USAGES[name] for name in profile.key_usage}
    if ({"encipher_only", "decipher_only"} & flags) and "key_agreement" not in flags:
        raise errors.ValidationFailed("'keyUsage' ENCIPHER_ONLY and DECIPHER_ONLY need KEY_AGREEMENT")


def _usage_extensions(profile: Profile) -> list[tuple[x509.ExtensionType, bool]]:
    out: list[tuple[x509.ExtensionType, bool]] = []
    if profile.key_usage:
        flags = {value: False for value in KEY_USAGES.values()}
        flags.update({KEY_USAGES[name]: True for name in profile.key_usage})
        out.append((x509.KeyUsage(**flags), True))
    if profile.extended_key_usage:
        usages = list(dict.fromkeys(EXTENDED_KEY_USAGES[name] for name in profile.extended_key_usage))
        out.append((x509.ExtendedKeyUsage(usages), True))
    return out


def _check_csr_names(request: x509.CertificateSigningRequest) -> None:
    """600 for a CSR whose subject or subject alternative names (which the issued certificate
    copies) hold a control character; the message names the attribute."""
    for attribute in request.subject:
        if isinstance(attribute.value, str):
            name = _WIRE_NAME_OF_OID.get(attribute.oid, attribute.oid.dotted_string)
            check_name_value(attribute.value, f"certificateSigningRequest subject {name}")
    try:
        san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return
    for general_name in san:
        if isinstance(general_name.value, str):
            check_name_value(general_name.value,
                             f"certificateSigningRequest subjectAltName {type(general_name).__name__}")


def _load_csr(text: str) -> x509.CertificateSigningRequest:
    """A CSR given as PEM (either armour) or as base64 DER; 628 when it is neither, 411 when its
    self-signature does not verify."""
    data = text.strip().encode()
    try:
        if b"-----BEGIN" in data:
            der = der_of(data)
        else:
            der = base64.b64decode(b"".join(data.split()), validate=True)
        csr = x509.load_der_x509_csr(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CsrInvalidFormat("'certificateSigningRequest' is not a PKCS#10 CSR (PEM or base64 DER)") from None
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise InvalidCertificateRequest("the CSR's signature does not verify")
    return csr
