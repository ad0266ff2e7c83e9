"""create_app(settings): wires store, backends, domain services and routers. No logic lives here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from pydantic import SecretStr

from hsmgate import __version__
from hsmgate.api.deps import authorize
from hsmgate.api.errors import install_error_handlers
from hsmgate.api.execution import inline_operations
from hsmgate.api.hot_dispatch import GatewayApp
from hsmgate.api.request_id import RequestIdMiddleware
from hsmgate.api.routes import (
    approvals,
    batch,
    certificates,
    data_objects,
    keys,
    pqc,
    requests,
    service,
    sync_ops,
    timestamps,
)
from hsmgate.auth.authenticator import Authenticator
from hsmgate.domain.audit import AttestationSigner, AuditTrail
from hsmgate.domain.clock import Clock, SystemClock
from hsmgate.domain.gateway import Gateway, OperationStores, PartitionServices
from hsmgate.domain.keys import KeyService
from hsmgate.domain.partitions import PartitionConfig, PartitionError, PartitionRegistry
from hsmgate.domain.passwords import PasswordService
from hsmgate.domain.signing import SigningService
from hsmgate.domain.ska_guard import SkaGuard
from hsmgate.hsm.base import HsmError, Partition
from hsmgate.settings import ConfigError, Settings
from hsmgate.ska import build_ska
from hsmgate.store.audit import AuditRepository
from hsmgate.store.certificates import CertificateRepository
from hsmgate.store.data_objects import DataObjectRepository
from hsmgate.store.database import Database
from hsmgate.store.key_metadata import KeyMetadataRepository
from hsmgate.store.partitions import PartitionRepository
from hsmgate.store.soft_keys import SoftKeyRepository
from hsmgate.store.wrapped_keys import WrappedKeyRepository

log = logging.getLogger("hsmgate")

DESCRIPTION = """REST gateway to hardware security modules, wire-compatible with the Securosys REST API /
Transaction Security Broker. Keys never leave the partition behind it."""


def open_partition(settings: Settings, db: Database) -> Partition:
    """The configured backend's partition; raises BackendUnavailable or ConfigError with one line."""
    if settings.backend == "pkcs11":
        from hsmgate.hsm.pkcs11 import Pkcs11Partition

        return Pkcs11Partition(
            settings.partition, module_path=settings.pkcs11_module or "", token_label=settings.pkcs11_token_label,
            slot_id=settings.pkcs11_slot, pin=settings.load_pkcs11_pin(), pool_size=settings.pkcs11_pool_size,
        )
    from hsmgate.hsm.soft import SoftPartition

    return SoftPartition(settings.partition, repository=SoftKeyRepository(db, settings.partition),
                         master_key=settings.load_master_key())


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


def operation_stores(settings: Settings, db: Database, partition: str) -> OperationStores:
    """Repositories of the encrypt/wrap/import/certificate/timestamp/data-object services."""
    return OperationStores(
        metadata=KeyMetadataRepository(db, partition), certificates=CertificateRepository(db, partition),
        data_objects=DataObjectRepository(db, partition), wrapped_keys=WrappedKeyRepository(db, partition),
        rfc_timestamp_key_name=settings.rfc_timestamp_key_name, rfc_timestamp_policy=settings.rfc_timestamp_policy,
    )


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


def build_gateway(settings: Settings, db: Database) -> Gateway:
    # follow key changes from now on (store/key_generation.py; on PostgreSQL this starts the
    # listener, so it is in sync by the first request and key caches pay off at once)
    db.key_generation.current()
    gateway = Gateway()
    try:
        for served in served_partitions(settings, db):
            backend = open_partition(served, db)
            try:
                check_master_key(served, backend)
            except ConfigError:
                backend.close()
                raise
            # SKA policies are enforced on every use of a key (domain/ska_guard.py); one metadata
            # repository for the hot reads, so guard and password checks share its cache
            metadata = KeyMetadataRepository(db, served.partition)
            partition = SkaGuard(backend, metadata.policy_guard)
            key_service = KeyService(partition, metadata, attestation_key_name=settings.attestation_key_name)
            gateway.add(PartitionServices(
                partition=partition, keys=key_service, signing=SigningService(partition),
                passwords=PasswordService(partition, metadata),
                stores=operation_stores(served, db, partition.name)))
            key_service.ensure_attestation_key(settings.attestation_key_size)
    except BaseException:
        gateway.close()
        raise
    return gateway


def build_audit(settings: Settings, db: Database, gateway: Gateway) -> AuditTrail:
    """The audit trail, each served partition's checkpoints signed by its attestation key."""
    trail = AuditTrail(AuditRepository(db), fail_closed=settings.audit_fail_closed,
                       checkpoint_interval=settings.audit_checkpoint_interval)
    for name in gateway.names():
        services = gateway.services(name)
        trail.signers[name] = AttestationSigner(services.partition, services.keys.attestation_key_name)
    return trail


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """A ready application: schema migrated, backends opened, attestation keys present.
    Raises ConfigError outside dev mode when no authentication method is configured. ``clock``:
    the time of the SKA workflow (tests pass a ``ManualClock``)."""
    settings.require_authentication()
    authenticator = Authenticator(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    gateway = build_gateway(settings, db)
    audit = build_audit(settings, db, gateway) if settings.audit_enabled else None
    ska_scheduler = build_ska(settings, db, gateway, clock or SystemClock(), audit)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ska_scheduler.start()
        yield
        ska_scheduler.stop()
        if audit is not None:  # sign what was appended since the last checkpoint
            for name in gateway.names():
                audit.checkpoint_if_moved(name)
            audit.repository.close()
        gateway.close()
        db.dispose()

    app = GatewayApp(
        title="hsmgate", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        docs_url="/swagger-ui/index.html", openapi_url="/v3/api-docs", redoc_url=None,
        dependencies=[Depends(authorize)],  # every route: authentication + role check (auth/roles.py)
        telemetry=None if settings.otel else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.gateway = gateway
    app.state.db = db
    app.state.authenticator = authenticator
    app.state.audit = audit
    app.state.inline_operations = inline_operations(settings, db.dialect)  # api/execution.py
    app.state.ska_scheduler = ska_scheduler
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    for hot in (sync_ops.hot_router, batch.router):  # sign, verify, batches: api/hot_dispatch.py
        app.include_hot_router(hot)
    for module in (keys, data_objects, sync_ops, timestamps, certificates, pqc, requests, approvals, service):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/swagger-ui/index.html")

    return app


def app_from_env() -> FastAPI:
    """App factory for process managers that import an app themselves (``uvicorn --factory
    hsmgate.app:app_from_env``, granian, gunicorn): Settings from HSMGATE_* and HSMGATE_CONFIG only."""
    return create_app(Settings())
