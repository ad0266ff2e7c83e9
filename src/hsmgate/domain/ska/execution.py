"""What an approved SKA request does: the executors of sign, decrypt, unwrap, certificate and ML-KEM
decapsulation requests, each a call of the key-use gate (``domain/key_use.py``) as the request
executor.

The stored request is the caller's wire JSON (without its key password, checked at submission);
each executor reads its inner request and answers the request's ``result`` (a base64 signature,
plaintext or shared secret, the new key's label, a PEM certificate or CSR).
"""

from __future__ import annotations

import base64
from typing import Any

from hsmgate.domain.algorithms import SignatureType
from hsmgate.domain.audit.recording import Actor
from hsmgate.domain.certificates import Profile, subject_name
from hsmgate.domain.key_use import Caller, KeyRef, KeyUse, SignItem, check_unwrap_target
from hsmgate.domain.keys import requested_attributes
from hsmgate.domain.signing import schnorr_options
from hsmgate.domain.ska.requests import RequestKind, RequestService, b64

#: The audit principal (and authentication method) of what the SKA scheduler does on its own.
SCHEDULER_PRINCIPAL = "scheduler"
SCHEDULER_AUTH_METHOD = "internal"


def _profile(inner: dict[str, Any]) -> Profile:
    return Profile(int(inner.get("validity") or 0), tuple(inner.get("keyUsage") or ()),
                   tuple(inner.get("extendedKeyUsage") or ()), bool(inner.get("certificateAuthority")))


def register_executors(requests: RequestService, gate: KeyUse) -> None:
    """Register the operations of the sign, decrypt, unwrap, certificate and decapsulation request kinds."""
    executor = Caller(Actor(SCHEDULER_PRINCIPAL, SCHEDULER_AUTH_METHOD, requests.partition_name, "-"),
                      executing=True)

    def sign(label: str, inner: dict[str, Any]) -> str:
        kind = inner.get("signatureType")
        signature = gate.sign(executor, SignItem(
            KeyRef(label), algorithm=str(inner.get("signatureAlgorithm")),
            payload=b64(inner.get("payload"), "signRequest.payload"),
            signature_type=SignatureType(kind) if kind else None,
            context=b64(inner.get("context"), "signRequest.context") or None,
            schnorr=schnorr_options(*(b64(inner[name], f"signRequest.{name}") if inner.get(name) is not None else None
                                      for name in ("auxiliaryRandomData", "taprootTweakData", "merkleRootData")))))
        return base64.b64encode(signature).decode()

    def decrypt(label: str, inner: dict[str, Any]) -> str:
        plaintext = gate.decrypt(
            executor, KeyRef(label), algorithm=str(inner.get("cipherAlgorithm")),
            encrypted_payload=b64(inner.get("encryptedPayload"), "decryptRequest.encryptedPayload"),
            iv=b64(inner.get("initializationVector"), "decryptRequest.initializationVector") or None,
            aad=b64(inner.get("additionalAuthenticationData"), "decryptRequest.additionalAuthenticationData") or None,
            tag_length=int(inner.get("tagLength") or 0))
        return base64.b64encode(plaintext).decode()

    def check_unwrap(_label: str, inner: dict[str, Any]) -> None:
        check_unwrap_target(str(inner.get("label") or ""), "unwrapKeyRequest.label",
                            policy_requested=inner.get("policy") is not None)

    def unwrap(label: str, inner: dict[str, Any]) -> str:
        signed = gate.unwrap(
            executor, KeyRef(label), wrapped=b64(inner.get("wrappedKey"), "unwrapKeyRequest.wrappedKey"),
            label=str(inner.get("label")), attributes=requested_attributes(inner.get("attributes") or {}),
            method=str(inner.get("wrapMethod")), algorithm=inner.get("algorithm"),
            policy_requested=inner.get("policy") is not None, label_field="unwrapKeyRequest.label")
        return signed.view.label  # GAP: the result of an unwrap is the new key's label

    def certificate_request(label: str, inner: dict[str, Any]) -> str:
        return gate.certificate_request(
            executor, KeyRef(label), algorithm=str(inner.get("signatureAlgorithm")),
            subject=subject_name(dict(inner.get("standardCertificateAttributes") or {})), profile=_profile(inner))

    def certificate_sign(label: str, inner: dict[str, Any]) -> str:
        return gate.sign_certificate(
            executor, KeyRef(label), algorithm=str(inner.get("signatureAlgorithm")),
            csr=str(inner.get("certificateSigningRequest")), common_name=inner.get("commonName"),
            profile=_profile(inner))

    def certificate_self_sign(label: str, inner: dict[str, Any]) -> str:
        return gate.self_sign(executor, KeyRef(label), algorithm=str(inner.get("signatureAlgorithm")),
                              common_name=str(inner.get("commonName")), profile=_profile(inner))

    def ciphertext(inner: dict[str, Any]) -> bytes:
        return b64(inner.get("ciphertext"), "decapsulationRequest.ciphertext")

    def check_decapsulate(label: str, inner: dict[str, Any]) -> None:
        gate.services.kem.check_decapsulation(label=label, ciphertext=ciphertext(inner))

    def decapsulate(label: str, inner: dict[str, Any]) -> str:
        return base64.b64encode(gate.decapsulate(executor, KeyRef(label), ciphertext(inner))).decode()

    requests.register(RequestKind.SIGN, sign)
    requests.register(RequestKind.DECRYPT, decrypt)
    requests.register(RequestKind.UNWRAP, unwrap, check_unwrap)
    requests.register(RequestKind.CERTIFICATE_REQUEST, certificate_request)
    requests.register(RequestKind.CERTIFICATE_SIGN, certificate_sign)
    requests.register(RequestKind.CERTIFICATE_SELF_SIGN, certificate_self_sign)
    requests.register(RequestKind.DECAPSULATE, decapsulate, check_decapsulate)
