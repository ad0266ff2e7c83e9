"""The composition root: builds, once, every service hsmgate runs — the state database, each served
partition's backend and domain services (the key-use gate among them), the audit trail and the SKA
services — for the HTTP app (``app.py``) and the command line alike. Nothing else constructs them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from hsmgate.domain.audit.log import AuditLog
from hsmgate.domain.audit.recording import Actor, AttestationSigner, AuditTrail, RequestAudit
from hsmgate.domain.certificates import CertificateService
from hsmgate.domain.clock import Clock, SystemClock
from hsmgate.domain.data_objects import DATA_OBJECT_KEY, DataObjectService
from hsmgate.domain.errors import TsbError
from hsmgate.domain.file_encryption import FileEncryptionService
from hsmgate.domain.gateway import Gateway, PartitionServices
from hsmgate.domain.kem import KemService
from hsmgate.domain.key_admin import KeyAdministration
from hsmgate.domain.key_transfer import KeyTransferService
from hsmgate.domain.key_use import KeyUse, KeyUseServices
from hsmgate.domain.keys import KeyService
from hsmgate.domain.operations import OperationsService
from hsmgate.domain.partition_binding import BindingMismatch, PartitionBindings
from hsmgate.domain.partitions import PartitionConfig, PartitionError, PartitionRegistry
from hsmgate.domain.passwords import PasswordService
from hsmgate.domain.signing import SigningService
from hsmgate.domain.ska.approvals import ApprovalService, SkaServices
from hsmgate.domain.ska.approvers import ApproverService
from hsmgate.domain.ska.execution import SCHEDULER_AUTH_METHOD, SCHEDULER_PRINCIPAL, register_executors
from hsmgate.domain.ska.policy import Policy
from hsmgate.domain.ska.request_signature import RequestSignatureRule, spki_fingerprint
from hsmgate.domain.ska.requests import RequestScheduler, RequestService
from hsmgate.domain.ska.results import ResultSealer
from hsmgate.domain.ska.timestamp_key import TimestampService
from hsmgate.domain.timestamps import RfcTimestampService
from hsmgate.hsm.base import (
    BackendUnavailable,
    HsmError,
    ModuleUnusable,
    Partition,
    PinRefused,
    TokenNotFound,
)
from hsmgate.metrics import Metrics
from hsmgate.preflight import prepare_data_dir
from hsmgate.settings import ConfigError, Settings
from hsmgate.store.approvers import ApproverRepository
from hsmgate.store.audit import AuditRepository
from hsmgate.store.audit_anchors import AnchorError, AnchorSink, FileAnchors, SyslogAnchors
from hsmgate.store.certificates import CertificateRepository
from hsmgate.store.data_objects import DataObjectRepository
from hsmgate.store.database import Database, DatabaseUnavailable
from hsmgate.store.key_metadata import KeyMetadataRepository
from hsmgate.store.partition_bindings import BindingRepository
from hsmgate.store.partitions import PartitionRepository
from hsmgate.store.requests import RequestRepository, count_by_status
from hsmgate.store.soft_keys import SoftKeyRepository
from hsmgate.store.wrapped_keys import WrappedKeyRepository

if TYPE_CHECKING:
    from hsmgate.hsm.pkcs11.partition import PoolObserver


def open_database(settings: Settings) -> Database:
    """The state database, migrated to the latest schema; ConfigError (one line naming the problem
    and the fix) when it cannot be opened: a missing database, a server that does not answer, a
    refused login, a SQLite file that cannot be created."""
    try:
        db = Database(settings.resolved_database_url)
    except DatabaseUnavailable as exc:
        raise ConfigError(str(exc)) from None
    try:
        db.migrate()
    except DatabaseUnavailable as exc:
        db.dispose()
        raise ConfigError(str(exc)) from None
    except BaseException:
        db.dispose()
        raise
    return db


def open_partition(settings: Settings, db: Database, *, pool_observer: PoolObserver | None = None) -> Partition:
    """The configured backend's partition; raises BackendUnavailable or ConfigError with one line.
    ``pool_observer`` watches a PKCS#11 partition's session pool (metrics)."""
    if settings.backend == "pkcs11":
        from hsmgate.hsm.pkcs11 import Pkcs11Partition

        return Pkcs11Partition(
            settings.partition, module_path=settings.pkcs11_module or "", token_label=settings.pkcs11_token_label,
            slot_id=settings.pkcs11_slot, pin=settings.load_pkcs11_pin(), pool_size=settings.pkcs11_pool_size,
            pool_observer=pool_observer, key_generation=db.key_generation.current,
            key_cache_size=settings.key_cache_size,
        )
    from hsmgate.hsm.soft import SoftPartition

    return SoftPartition(settings.partition, repository=SoftKeyRepository(db, settings.partition),
                         master_key=settings.load_master_key(), key_cache_size=settings.key_cache_size)


def pkcs11_problem(settings: Settings, exc: BackendUnavailable, *, database_partition: bool) -> str:
    """The backend's message and what to change: the HSMGATE_PKCS11_* setting, or for a partition of
    the database (``hsmgate partition add``) its record."""
    module = settings.pkcs11_module
    if isinstance(exc, ModuleUnusable):
        fix = ("set HSMGATE_PKCS11_MODULE to the vendor's PKCS#11 library "
               "(SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)")
    elif isinstance(exc, TokenNotFound):
        fix = (f"'hsmgate pkcs11 list --module {module}' shows its tokens: set HSMGATE_PKCS11_TOKEN_LABEL "
               "or HSMGATE_PKCS11_SLOT to one of them")
    elif isinstance(exc, PinRefused):
        fix = ("correct HSMGATE_PKCS11_PIN or HSMGATE_PKCS11_PIN_FILE (tokens lock the user after a few "
               "wrong PINs)")
    else:
        fix = f"check that the HSM is reachable ('hsmgate pkcs11 list --module {module}' shows what the module sees)"
    if database_partition:
        fix = (f"partition '{settings.partition}' was added with 'hsmgate partition add': remove it and add it "
               f"again with the right --module, --token-label or --pin-file ({fix.split(':')[0]})")
    return f"{str(exc).rstrip('.')}: {fix}"


def partition_settings(settings: Settings, config: PartitionConfig) -> Settings:
    """The settings of a database partition: the global ones with its name and backend."""
    update: dict[str, object] = {"partition": config.name, "backend": config.backend}
    if config.backend == "pkcs11":
        update |= {"pkcs11_module": config.module, "pkcs11_token_label": config.token_label,
                   "pkcs11_slot": config.slot, "pkcs11_pin": SecretStr(config.pin or ""), "pkcs11_pin_file": None}
        if config.pool_size:
            update["pkcs11_pool_size"] = config.pool_size
    return settings.model_copy(update=update)


def served_partitions(settings: Settings, db: Database) -> list[Settings]:
    """The settings partition first, then those of the database (``hsmgate partition add``)."""
    repository = PartitionRepository(db)
    if not repository.all():
        return [settings]
    try:
        configs = PartitionRegistry(repository, settings.load_master_key()).load()
    except PartitionError as exc:
        raise ConfigError(str(exc)) from None
    if any(config.name == settings.partition for config in configs):
        raise ConfigError(f"partition '{settings.partition}' is both HSMGATE_PARTITION and a database partition; "
                          "rename one of them")
    return [settings, *(partition_settings(settings, config) for config in configs)]


def check_master_key(settings: Settings, backend: Partition) -> None:
    """A soft partition whose keys do not unseal with the configured master key is refused with
    one line (ConfigError): served, it would answer UP and seal new keys under the wrong key."""
    check = getattr(backend, "check_master_key", None)
    if check is None:  # PKCS#11: the token holds its keys
        return
    try:
        check(settings.attestation_key_name)
    except HsmError:
        source = "HSMGATE_MASTER_KEY" if settings.master_key is not None else settings.data_dir / "master.key"
        raise ConfigError(f"the master key ({source}) does not unseal the keys of partition "
                          f"'{settings.partition}': it is not the key they were sealed with") from None


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


def request_signature_rule(settings: Settings) -> RequestSignatureRule:
    """The ``requestSignature`` whitelist of HSMGATE_ALLOWED_REQUEST_CERTIFICATES (PEM or DER
    certificates or public keys, several per PEM file) and HSMGATE_ALLOWED_REQUEST_KEY_FINGERPRINTS."""
    fingerprints: list[str] = []
    for path in settings.allowed_request_certificates:
        try:
            fingerprints += [spki_fingerprint(der) for der in _public_keys_der(Path(path).read_bytes())]
        except (OSError, ValueError, UnsupportedAlgorithm) as exc:
            raise ConfigError(f"HSMGATE_ALLOWED_REQUEST_CERTIFICATES: cannot read {path}: {exc}") from None
    for text in settings.allowed_request_key_fingerprints:
        fingerprint = text.replace(":", "").lower()
        if len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint):
            raise ConfigError(f"HSMGATE_ALLOWED_REQUEST_KEY_FINGERPRINTS: {text!r} is not a SHA-256 fingerprint "
                              "(64 hex digits)")
        fingerprints.append(fingerprint)
    return RequestSignatureRule(fingerprints)


_PEM_BLOCK = re.compile(rb"-----BEGIN (CERTIFICATE|PUBLIC KEY)-----.+?-----END \1-----", re.DOTALL)


def _public_keys_der(data: bytes) -> list[bytes]:
    """The DER SubjectPublicKeyInfo of each certificate or public key in a PEM or DER file."""
    spki, der = serialization.PublicFormat.SubjectPublicKeyInfo, serialization.Encoding.DER
    if b"-----BEGIN" not in data:
        try:
            return [x509.load_der_x509_certificate(data).public_key().public_bytes(der, spki)]
        except ValueError:
            return [serialization.load_der_public_key(data).public_bytes(der, spki)]
    keys = [(x509.load_pem_x509_certificate(block[0]).public_key() if block[1] == b"CERTIFICATE"
             else serialization.load_pem_public_key(block[0])).public_bytes(der, spki)
            for block in _PEM_BLOCK.finditer(data)]
    if not keys:
        raise ValueError("no CERTIFICATE or PUBLIC KEY in it")
    return keys


def build_partition(settings: Settings, served: Settings, db: Database, backend: Partition,
                    audit: AuditTrail | None, metrics: Metrics | None = None) -> PartitionServices:
    """The domain services of one partition, on ``backend``; its attestation key (and that key's
    self-signed certificate) is created when absent and, like the data-object key's name, flagged
    internal. With ``metrics``, the key-use gate counts its operations there."""
    name = served.partition
    metadata = KeyMetadataRepository(db, name, hot_cache_size=settings.key_cache_size)
    certificates_store = CertificateRepository(db, name)
    keys = KeyService(backend, metadata, attestation_key_name=settings.attestation_key_name)
    passwords = PasswordService(backend, metadata)
    certificates = CertificateService(backend, repository=certificates_store)
    transfer = KeyTransferService(backend, keys=keys, metadata=metadata, certificates=certificates_store)
    gate = KeyUse(backend, metadata=metadata, passwords=passwords, audit=audit,
                  metrics=metrics.operations if metrics is not None else None, services=KeyUseServices(
        signing=SigningService(backend),
        operations=OperationsService(backend, keys=keys, metadata=metadata,
                                     wrapped_keys=WrappedKeyRepository(db, name)),
        kem=KemService(backend), certificates=certificates,
        timestamps=RfcTimestampService(backend, certificates=certificates, key_name=served.rfc_timestamp_key_name,
                                       policy_oid=served.rfc_timestamp_policy),
        transfer=transfer, files=FileEncryptionService(backend),
    ))
    admin = KeyAdministration(keys=keys, gate=gate, passwords=passwords, transfer=transfer, metadata=metadata,
                              certificates=certificates, certificate_store=certificates_store)
    keys.ensure_attestation_key(settings.attestation_key_size)
    certificates.attestation_certificate(settings.attestation_key_name)  # the chain of attestation bundles
    now = datetime.now(UTC).replace(microsecond=0)
    for internal in (settings.attestation_key_name, DATA_OBJECT_KEY):
        metadata.mark_internal(internal, when=now)
    audit_log = (AuditLog(audit.repository, name, text_lines=settings.hsm_log_lines)
                 if audit is not None else None)
    return PartitionServices(partition=backend, keys=keys, key_use=gate, admin=admin,
                             data_objects=DataObjectService(backend, DataObjectRepository(db, name), gate=gate),
                             audit_log=audit_log)


def bind_partition(bindings: PartitionBindings, served: Settings, backend: Partition) -> None:
    """The partition's state belongs to ``backend``'s token (``domain/partition_binding.py``). The
    master key is checked first (its message names the setting), so a partition is never bound to
    a wrong key; then a bound partition is compared and an unbound one bound."""
    identity = backend.identity()
    check_master_key(served, backend)
    try:
        if not bindings.check(served.partition, identity):
            bindings.bind(served.partition, identity, when=datetime.now(UTC))
    except BindingMismatch as exc:
        raise ConfigError(str(exc)) from None


def build_gateway(settings: Settings, db: Database, audit: AuditTrail | None = None,
                  metrics: Metrics | None = None) -> Gateway:
    """Every served partition's services (backends opened, bound to their state, master keys
    checked)."""
    # follow key changes from now on (store/key_generation.py; on PostgreSQL this starts the
    # listener, so it is in sync by the first request and key caches pay off at once)
    db.key_generation.current()
    bindings = PartitionBindings(BindingRepository(db))
    gateway = Gateway()
    try:
        for index, served in enumerate(served_partitions(settings, db)):
            try:
                pool = metrics.pools.pool(served.partition) if metrics and served.backend == "pkcs11" else None
                backend = open_partition(served, db, pool_observer=pool)
            except BackendUnavailable as exc:
                if served.backend != "pkcs11":
                    raise
                raise ConfigError(pkcs11_problem(served, exc, database_partition=index > 0)) from None
            try:
                with db.start_up_lock():  # one starting process at a time creates the attestation key
                    bind_partition(bindings, served, backend)
                    gateway.add(build_partition(settings, served, db, backend, audit, metrics))
            except BaseException:
                backend.close()
                raise
    except BaseException:
        gateway.close()
        raise
    return gateway


def build_audit(settings: Settings, db: Database, metrics: Metrics | None = None) -> AuditTrail | None:
    """The audit trail (None when HSMGATE_AUDIT_ENABLED is false); signers are attached by
    :func:`attach_signers` once the partitions are open."""
    if not settings.audit_enabled:
        return None
    return audit_trail(settings, db, metrics)


def audit_trail(settings: Settings, db: Database, metrics: Metrics | None = None) -> AuditTrail:
    """An audit trail on ``db`` with the configured anchor sinks (the file, and syslog when
    HSMGATE_AUDIT_ANCHOR_SYSLOG); raises ConfigError when one cannot be opened. With ``metrics``,
    its queue and commits are measured there."""
    sinks: list[AnchorSink] = []
    try:
        sinks.append(FileAnchors(settings.resolved_audit_anchor_file))
        if settings.audit_anchor_syslog:
            sinks.append(SyslogAnchors(settings.audit_anchor_syslog_address))
    except AnchorError as exc:
        for sink in sinks:
            sink.close()
        raise ConfigError(str(exc)) from None
    return AuditTrail(AuditRepository(db, metrics.audit if metrics is not None else None), fail_closed=settings.audit_fail_closed,
                      checkpoint_interval=settings.audit_checkpoint_interval, anchors=sinks)


def attach_signers(audit: AuditTrail, gateway: Gateway) -> None:
    """Each served partition's checkpoints signed by its attestation key."""
    for name in gateway.names():
        services = gateway.services(name)
        audit.signers[name] = AttestationSigner(services.partition, services.keys.attestation_key_name)


def result_sealer(settings: Settings) -> ResultSealer:
    """The sealer of SKA request results, keyed by the master key (HSMGATE_MASTER_KEY, or
    ``<data-dir>/master.key``, created 0600 on first use with either backend)."""
    return ResultSealer(settings.load_master_key(), retention=timedelta(seconds=settings.ska_result_retention))


def build_partition_ska(settings: Settings, db: Database, services: PartitionServices, clock: Clock,
                        audit: AuditTrail | None = None) -> SkaServices:
    """The SKA services of one partition; creates its timestamp key when absent (flagged internal).
    With ``audit``, the scheduler's executions and expiries are recorded as the principal
    ``scheduler``."""
    name = services.partition.name
    metadata = KeyMetadataRepository(db, name)
    timestamps = TimestampService(services.partition, metadata, settings.timestamp_key_name)
    with db.start_up_lock():  # one starting process at a time creates the partition's internal keys
        timestamps.ensure(clock.now())
    metadata.mark_internal(settings.timestamp_key_name, when=datetime.now(UTC).replace(microsecond=0))
    requests = RequestService(partition_name=name, repository=RequestRepository(db, name), keys=services.keys,
                              signing=services.key_use.services.signing, timestamps=timestamps, clock=clock,
                              results=result_sealer(settings))
    requests.request_signatures = request_signature_rule(settings)
    approvals = ApprovalService(
        requests, clock=clock, max_timestamp_diff=settings.max_timestamp_diff,
        max_future_timestamp_diff=settings.max_future_timestamp_diff,
        timestamp_signers=load_certificates(settings.timestamp_signing_certificates),
    )
    register_executors(requests, services.key_use)
    services.key_use.attach_approvals(approvals)
    if audit is not None:
        def scheduler_audit(request_id: str) -> RequestAudit:
            return RequestAudit(audit, Actor(principal=SCHEDULER_PRINCIPAL, auth_method=SCHEDULER_AUTH_METHOD,
                                             partition=name, request_id=request_id))

        requests.scheduler_audit = scheduler_audit
    services.keys.on_delete.append(requests.cancel_for_key)
    approvers = ApproverService(partition=services.partition, repository=ApproverRepository(db, name),
                                requests=requests, metadata=metadata, backup_key=settings.approver_backup_key_name,
                                code_ttl=settings.approver_one_time_code_ttl, clock=clock)
    with db.start_up_lock():
        approvers.ensure_backup_key(approver_backup_key_policy(settings))
    services.keys.approver_certificate = approvers.certificate
    ska = SkaServices(requests=requests, approvals=approvals, timestamps=timestamps, approvers=approvers)
    services.ska = ska
    return ska


def approver_backup_key_policy(settings: Settings) -> Policy | None:
    """HSMGATE_APPROVER_BACKUP_KEY_POLICY as a policy (a PolicyDto; keyStatus may be left out);
    ConfigError naming the setting when it is no valid policy."""
    text = settings.approver_backup_key_policy
    if not text:
        return None
    try:
        data = json.loads(text)
        return Policy.from_wire(data, field="HSMGATE_APPROVER_BACKUP_KEY_POLICY",
                                key_status=isinstance(data, dict) and "keyStatus" in data)
    except (ValueError, TsbError) as exc:
        raise ConfigError(f"HSMGATE_APPROVER_BACKUP_KEY_POLICY is not a valid SKA policy: {exc}") from None


def build_ska(settings: Settings, db: Database, gateway: Gateway, clock: Clock,
              audit: AuditTrail | None = None) -> RequestScheduler:
    """SKA services for every served partition, and this process's (not yet started) scheduler."""
    for name in gateway.names():
        build_partition_ska(settings, db, gateway.services(name), clock, audit)

    def request_services() -> list[RequestService]:
        return [ska.requests for name in gateway.names() if (ska := gateway.services(name).ska) is not None]

    return RequestScheduler(request_services, settings.ska_scheduler_interval)


@dataclass(slots=True)
class Runtime:
    """Everything one hsmgate process serves with."""

    settings: Settings
    db: Database
    gateway: Gateway
    audit: AuditTrail | None
    scheduler: RequestScheduler
    metrics: Metrics

    def close(self) -> None:
        """Sign the checkpoints the audit chains owe and what they appended since their last
        checkpoint, close backends and the database; a worker's live gauges stop counting."""
        self.metrics.process_exiting()
        if self.audit is not None:
            for name in self.gateway.names():
                self.audit.settle_owed(name, now=True)
                self.audit.checkpoint_if_moved(name)
            self.audit.close()
        self.gateway.close()
        self.db.dispose()


def build_runtime(settings: Settings, *, clock: Clock | None = None) -> Runtime:
    """The database migrated, every partition's services, the audit trail and SKA services, and
    the metrics they report to."""
    approver_backup_key_policy(settings)  # a bad HSMGATE_APPROVER_BACKUP_KEY_POLICY stops before anything opens
    prepare_data_dir(settings.data_dir)  # umask 077, data dir 0700, writable (preflight.py, private_files.py)
    db = open_database(settings)
    metrics = Metrics()
    metrics.count_ska_requests(lambda: count_by_status(db))
    try:
        audit = build_audit(settings, db, metrics)
        gateway = build_gateway(settings, db, audit, metrics)
    except BaseException:
        db.dispose()
        raise
    if audit is not None:
        attach_signers(audit, gateway)
    scheduler = build_ska(settings, db, gateway, clock or SystemClock(), audit)
    return Runtime(settings=settings, db=db, gateway=gateway, audit=audit, scheduler=scheduler, metrics=metrics)
