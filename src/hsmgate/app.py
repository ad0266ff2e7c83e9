"""create_app(settings): wires store, backends, domain services and routers. No logic lives here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from hsmgate import __version__
from hsmgate.api.errors import install_error_handlers
from hsmgate.api.routes import keys, service, sync_ops
from hsmgate.domain.gateway import Gateway, PartitionServices
from hsmgate.domain.keys import KeyService
from hsmgate.domain.signing import SigningService
from hsmgate.hsm.base import Partition
from hsmgate.settings import Settings
from hsmgate.store.database import Database
from hsmgate.store.key_metadata import KeyMetadataRepository
from hsmgate.store.soft_keys import SoftKeyRepository

log = logging.getLogger("hsmgate")
logging.getLogger("alembic").setLevel(logging.WARNING)

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


def build_gateway(settings: Settings, db: Database) -> Gateway:
    partition = open_partition(settings, db)
    key_service = KeyService(partition, KeyMetadataRepository(db, partition.name),
                             attestation_key_name=settings.attestation_key_name)
    key_service.ensure_attestation_key(settings.attestation_key_size)
    gateway = Gateway()
    gateway.add(PartitionServices(partition=partition, keys=key_service, signing=SigningService(partition)))
    return gateway


def create_app(settings: Settings) -> FastAPI:
    """A ready application: schema migrated, backend opened, attestation key present."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    gateway = build_gateway(settings, db)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        gateway.close()
        db.dispose()

    app = FastAPI(
        title="hsmgate", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        docs_url="/swagger-ui/index.html", openapi_url="/v3/api-docs", redoc_url=None,
    )
    app.state.settings = settings
    app.state.gateway = gateway
    app.state.db = db
    install_error_handlers(app)
    for module in (keys, sync_ops, service):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/swagger-ui/index.html")

    return app
