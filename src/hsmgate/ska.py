"""Wiring of the SKA services (issue 5): per served partition its timestamp key, request service
and approval service, and the per-process request scheduler. Called by ``create_app``."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hsmgate.domain import errors
from hsmgate.domain.approvals import ApprovalService
from hsmgate.domain.audit import Actor, AuditTrail, RequestAudit
from hsmgate.domain.certificates import CertificateService, Profile, subject_name
from hsmgate.domain.clock import Clock
from hsmgate.domain.gateway import Gateway, PartitionServices
from hsmgate.domain.keys import check_label
from hsmgate.domain.operations import OperationsService
from hsmgate.domain.requests import RequestKind, RequestScheduler, RequestService, SkaServices, b64
from hsmgate.domain.timestamp_key import TimestampService
from hsmgate.settings import ConfigError, Settings
from hsmgate.store.database import Database
from hsmgate.store.key_metadata import KeyMetadataRepository
from hsmgate.store.requests import RequestRepository


def load_certificates(paths: tuple[Path, ...]) -> list[bytes]:
    """DER of each certificate file (PEM or DER) of HSMGATE_TIMESTAMP_SIGNING_CERTIFICATES."""
    out: list[bytes] = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
            certificate = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                           else x509.load_der_x509_certificate(data))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read timestamp signing certificate {path}: {exc}") from None
        out.append(certificate.public_bytes(serialization.Encoding.DER))
    return out


class _CheckedAtSubmission:
    """Password checks of an executing request: the key password was checked when the request was
    made (``api/routes/requests.py``) and is not stored, so the executor does not ask again."""

    def check(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def _profile(inner: dict[str, Any]) -> Profile:
    return Profile(int(inner.get("validity") or 0), tuple(inner.get("keyUsage") or ()),
                   tuple(inner.get("extendedKeyUsage") or ()), bool(inner.get("certificateAuthority")))


def register_operations(requests: RequestService, services: PartitionServices) -> None:
    """Asynchronous decrypt, unwrap and certificate requests, executed by the services of
    ``domain/operations.py`` and ``domain/certificates.py`` (on the SKA-guarded partition)."""
    from hsmgate.api.routes.keys import key_attributes  # the AttributesDto → KeyAttributes rules
    from hsmgate.api.wire.keys import CreateKeyAttributes

    stores = services.stores
    checked: Any = _CheckedAtSubmission()
    operations = OperationsService(services.partition, keys=services.keys, passwords=checked,
                                   metadata=stores.metadata, wrapped_keys=stores.wrapped_keys)
    certificates = CertificateService(services.partition, passwords=checked, repository=stores.certificates)

    def decrypt(label: str, inner: dict[str, Any]) -> str:
        plaintext = operations.decrypt(
            label=label, password=None, algorithm=str(inner.get("cipherAlgorithm")),
            encrypted_payload=b64(inner.get("encryptedPayload"), "decryptRequest.encryptedPayload"),
            iv=b64(inner.get("initializationVector"), "decryptRequest.initializationVector") or None,
            aad=b64(inner.get("additionalAuthenticationData"), "decryptRequest.additionalAuthenticationData") or None,
            tag_length=int(inner.get("tagLength") or 0),
        )
        return base64.b64encode(plaintext).decode()

    def check_unwrap(_label: str, inner: dict[str, Any]) -> None:
        if inner.get("policy") is not None:
            raise errors.UnsupportedOperation("'unwrapKeyRequest.policy': Smart Key Attributes are not supported "
                                              "on unwrapped keys")
        check_label(str(inner.get("label") or ""), "unwrapKeyRequest.label")

    def unwrap(label: str, inner: dict[str, Any]) -> str:
        attributes = key_attributes(CreateKeyAttributes.model_validate(inner.get("attributes") or {}))
        signed = operations.unwrap(
            wrapped=b64(inner.get("wrappedKey"), "unwrapKeyRequest.wrappedKey"), label=str(inner.get("label")),
            attributes=attributes, unwrap_label=label, unwrap_password=None, method=str(inner.get("wrapMethod")),
            algorithm=inner.get("algorithm"),
        )
        return signed.view.label  # GAP: the result of an unwrap is the new key's label

    def certificate_request(label: str, inner: dict[str, Any]) -> str:
        return certificates.request(label=label, password=None, algorithm=str(inner.get("signatureAlgorithm")),
                                    subject=subject_name(dict(inner.get("standardCertificateAttributes") or {})),
                                    profile=_profile(inner))

    def certificate_sign(label: str, inner: dict[str, Any]) -> str:
        return certificates.sign_request(label=label, password=None, algorithm=str(inner.get("signatureAlgorithm")),
                                         csr=str(inner.get("certificateSigningRequest")),
                                         common_name=inner.get("commonName"), profile=_profile(inner))

    def certificate_self_sign(label: str, inner: dict[str, Any]) -> str:
        return certificates.self_sign(label=label, password=None, algorithm=str(inner.get("signatureAlgorithm")),
                                      common_name=str(inner.get("commonName")), profile=_profile(inner))

    requests.register(RequestKind.DECRYPT, decrypt)
    requests.register(RequestKind.UNWRAP, unwrap, check_unwrap)
    requests.register(RequestKind.CERTIFICATE_REQUEST, certificate_request)
    requests.register(RequestKind.CERTIFICATE_SIGN, certificate_sign)
    requests.register(RequestKind.CERTIFICATE_SELF_SIGN, certificate_self_sign)


#: The audit principal (and authentication method) of what the SKA scheduler does on its own.
SCHEDULER_PRINCIPAL = "scheduler"
SCHEDULER_AUTH_METHOD = "internal"


def build_partition_ska(settings: Settings, db: Database, gateway: Gateway, name: str, clock: Clock,
                        audit: AuditTrail | None = None) -> SkaServices:
    """The SKA services of one served partition; creates its timestamp key when absent. With
    ``audit``, the scheduler's executions and expiries are recorded as the principal ``scheduler``
    (each record's ``request_id`` and ``ska_request_id``: the SKA request's id)."""
    services = gateway.services(name)
    metadata = KeyMetadataRepository(db, name)
    timestamps = TimestampService(services.partition, metadata, settings.timestamp_key_name)
    timestamps.ensure(clock.now())
    requests = RequestService(partition_name=name, repository=RequestRepository(db, name), keys=services.keys,
                              signing=services.signing, timestamps=timestamps, clock=clock)
    approvals = ApprovalService(
        requests, clock=clock, max_timestamp_diff=settings.max_timestamp_diff,
        max_future_timestamp_diff=settings.max_future_timestamp_diff,
        timestamp_signers=load_certificates(settings.timestamp_signing_certificates),
    )
    register_operations(requests, services)
    if audit is not None:
        attestation_key_name = services.keys.attestation_key_name

        def scheduler_audit(request_id: str) -> RequestAudit:
            actor = Actor(principal=SCHEDULER_PRINCIPAL, auth_method=SCHEDULER_AUTH_METHOD, partition=name,
                          request_id=request_id)
            return RequestAudit(audit, actor, attestation_key_name)

        requests.scheduler_audit = scheduler_audit
    services.keys.on_delete.append(requests.cancel_for_key)
    ska = SkaServices(requests=requests, approvals=approvals, timestamps=timestamps)
    services.ska = ska
    return ska


def build_ska(settings: Settings, db: Database, gateway: Gateway, clock: Clock,
              audit: AuditTrail | None = None) -> RequestScheduler:
    """SKA services for every served partition, and this process's (not yet started) scheduler."""
    for name in gateway.names():
        build_partition_ska(settings, db, gateway, name, clock, audit)

    def request_services() -> list[RequestService]:
        out = []
        for name in gateway.names():
            ska = getattr(gateway.services(name), "ska", None)
            if ska is not None:
                out.append(ska.requests)
        return out

    return RequestScheduler(request_services, settings.ska_scheduler_interval)
