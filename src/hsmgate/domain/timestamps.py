"""RFC 3161 time-stamp tokens (``POST /v1/createRfcTimestamp``), signed inside the backend.

The token is a CMS ``SignedData`` (RFC 5652) whose content is a ``TSTInfo`` (RFC 3161 §2.4.2):

* ``messageImprint`` = ``hashAlgorithm``(payload) — the request's ``payload`` is the data, hashed
  here (the DTO says "the payload for which the timestamp should be created");
* ``policy`` = ``HSMGATE_RFC_TIMESTAMP_POLICY``; a random 128-bit serial; ``genTime`` in UTC with
  second precision; no nonce (the request has none);
* signed attributes: contentType ``id-ct-TSTInfo``, messageDigest, signingTime and
  ``signingCertificateV2`` (RFC 5035 ``ESSCertIDv2`` with SHA-256 and issuerSerial, RFC 5816);
* the signer's certificate is embedded. The key named by ``HSMGATE_RFC_TIMESTAMP_KEY_NAME`` signs
  (RSA PKCS#1 v1.5, ECDSA, or Ed25519 with SHA-512 as RFC 8419 pairs them). When it has no
  certificate, one is self-signed at first use with extendedKeyUsage ``timeStamping`` (critical),
  what ``openssl ts -verify`` demands; a stored certificate without it is refused (402).

Without ``HSMGATE_RFC_TIMESTAMP_KEY_NAME`` the endpoint answers 300 ``res.error.config.not.existent``
(HTTP 400: a refusal, not a server fault), as the TSB refuses timestamps when
``hsm.rfcTimestampKeyName`` is not configured.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hsmgate.domain import errors
from hsmgate.domain.certificates import CertificateService, Profile
from hsmgate.domain.hsm_errors import translated
from hsmgate.domain.key_transfer import InvalidCertificate
from hsmgate.hsm.base import HashAlg, KeyInfo, KeyType, Partition, SignMechanism, SignScheme

#: ``hashAlgorithm`` wire values (case-insensitive, with or without the dash) → digest.
HASH_ALGORITHMS: dict[str, HashAlg] = {
    "SHA1": HashAlg.SHA1, "SHA224": HashAlg.SHA224, "SHA256": HashAlg.SHA256,
    "SHA384": HashAlg.SHA384, "SHA512": HashAlg.SHA512,
}
_ASN1_DIGEST = {HashAlg.SHA1: "sha1", HashAlg.SHA224: "sha224", HashAlg.SHA256: "sha256",
                HashAlg.SHA384: "sha384", HashAlg.SHA512: "sha512"}
#: Lifetime of a self-signed timestamp certificate.
TSA_CERTIFICATE_DAYS = 3650


class TimestampNotConfigured(errors.TsbError):
    code = 300


def hash_algorithm(name: str) -> HashAlg:
    hash_alg = HASH_ALGORITHMS.get(name.upper().replace("-", "").replace("_", ""))
    if hash_alg is None:
        raise errors.ValidationFailed(f"Value '{name}' is not valid for field 'hashAlgorithm'; expected one of "
                                      + ", ".join(HASH_ALGORITHMS))
    return hash_alg


class RfcTimestampService:
    """Issues RFC 3161 tokens with the configured key of one partition."""

    def __init__(self, partition: Partition, *, certificates: CertificateService, key_name: str | None,
                 policy_oid: str, clock: Callable[[], datetime] | None = None) -> None:
        self.partition = partition
        self._certificates = certificates
        self.key_name = key_name
        self._policy = policy_oid
        self._clock = clock or (lambda: datetime.now(UTC))

    def create(self, *, payload: bytes, hash_name: str) -> bytes:
        """The DER ``ContentInfo`` of a TimeStampToken for ``payload``."""
        imprint_hash = hash_algorithm(hash_name)
        if not self.key_name:
            raise TimestampNotConfigured(
                "RFC 3161 timestamps are not configured on this server (HSMGATE_RFC_TIMESTAMP_KEY_NAME)", status=400)
        with translated():
            info = self.partition.get(self.key_name)
        if info.key_type is KeyType.ED and info.curve_oid == "1.3.101.113":
            raise errors.AlgorithmNotSupportedByKey(
                f"the timestamp key '{info.label}' is Ed448 (CMS needs SHAKE256 for it); use RSA, EC or Ed25519")
        certificate = self._certificate(info)
        signer_hash = imprint_hash if imprint_hash in (HashAlg.SHA384, HashAlg.SHA512) else HashAlg.SHA256
        if info.key_type is KeyType.ED:
            signer_hash = HashAlg.SHA512  # RFC 8419: Ed25519 in CMS pairs with SHA-512
        now = self._clock().replace(microsecond=0)

        tst_info = tsp.TSTInfo({
            "version": "v1",
            "policy": self._policy,
            "message_imprint": {
                "hash_algorithm": {"algorithm": _ASN1_DIGEST[imprint_hash]},
                "hashed_message": hashlib.new(str(imprint_hash), payload).digest(),
            },
            "serial_number": int.from_bytes(secrets.token_bytes(16), "big"),
            "gen_time": now,
        })
        content = tst_info.dump()
        cert_der = certificate.public_bytes(serialization.Encoding.DER)
        asn1_cert = asn1_x509.Certificate.load(cert_der)
        ess_cert_id = {"cert_hash": hashlib.sha256(cert_der).digest(),
                       "issuer_serial": {"issuer": [asn1_x509.GeneralName({"directory_name": asn1_cert.issuer})],
                                         "serial_number": asn1_cert.serial_number}}
        signed_attrs = cms.CMSAttributes([
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": now})]}),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.new(str(signer_hash), content).digest()]}),
            cms.CMSAttribute({"type": "signing_certificate_v2",
                              "values": [{"certs": [ess_cert_id]}]}),
        ])
        mechanism, signature_algorithm = _signature_scheme(info, signer_hash)
        with translated():
            signature = self.partition.sign(info.label, mechanism, signed_attrs.dump())
        signer_info = cms.SignerInfo({
            "version": "v1",
            "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
                "issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number}}),
            "digest_algorithm": {"algorithm": _ASN1_DIGEST[signer_hash]},
            "signed_attrs": signed_attrs,
            "signature_algorithm": signature_algorithm,
            "signature": signature,
        })
        signed_data = cms.SignedData({
            "version": "v3",
            "digest_algorithms": [{"algorithm": _ASN1_DIGEST[signer_hash]}],
            "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(content)},
            "certificates": [asn1_cert],
            "signer_infos": [signer_info],
        })
        return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()

    def _certificate(self, info: KeyInfo) -> x509.Certificate:
        certificate = self._certificates.certificate_of(info)
        if certificate is None:
            algorithm = {KeyType.RSA: "SHA256_WITH_RSA", KeyType.EC: "SHA256_WITH_ECDSA",
                         KeyType.ED: "EDDSA"}.get(info.key_type)
            if algorithm is None:
                raise errors.AlgorithmNotSupportedByKey(
                    f"the timestamp key '{info.label}' is {info.key_type}; it must be an RSA, EC or ED key")
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hsmgate TSA {info.label}"[:64])])
            profile = Profile(TSA_CERTIFICATE_DAYS, ("DIGITAL_SIGNATURE", "CONTENT_COMMITMENT"), ("TIME_STAMPING",))
            return self._certificates.issue_self_signed(info, algorithm=algorithm, subject=subject, profile=profile)
        try:
            eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        except x509.ExtensionNotFound:
            eku = None
        if eku is None or not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
            raise InvalidCertificate(f"the certificate of timestamp key '{info.label}' must have a critical "
                                     "extendedKeyUsage of timeStamping only (RFC 3161 §2.3)")
        return certificate


def _signature_scheme(info: KeyInfo, hash_alg: HashAlg) -> tuple[SignMechanism, algos.SignedDigestAlgorithm]:
    name = _ASN1_DIGEST[hash_alg]
    if info.key_type is KeyType.RSA:
        return SignMechanism(SignScheme.RSA_PKCS1V15, hash_alg), algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})
    if info.key_type is KeyType.EC:
        return SignMechanism(SignScheme.ECDSA, hash_alg), algos.SignedDigestAlgorithm({"algorithm": f"{name}_ecdsa"})
    if info.key_type is KeyType.ED:
        return SignMechanism(SignScheme.EDDSA), algos.SignedDigestAlgorithm({"algorithm": "ed25519"})
    raise errors.AlgorithmNotSupportedByKey(f"the timestamp key '{info.label}' cannot sign CMS ({info.key_type})")
