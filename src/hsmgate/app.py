"""create_app(settings): the HTTP application on top of the services :mod:`hsmgate.bootstrap`
builds — one middleware stack, the routers of every TSB tag, the error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse

from hsmgate import __version__
from hsmgate.api.body_limit import BodyLimitMiddleware, max_batch_body_bytes, max_file_body_bytes
from hsmgate.api.deps import authorize
from hsmgate.api.dev_guard import guard_dev_mode
from hsmgate.api.approver_app import install_approver_app
from hsmgate.api.docs_pages import SWAGGER_UI_PATH, install_docs_pages
from hsmgate.api.errors import install_error_handlers
from hsmgate.api.execution import inline_operations
from hsmgate.api.metrics import MetricsMiddleware
from hsmgate.api.metrics import router as metrics_router
from hsmgate.api.request_id import RequestIdMiddleware
from hsmgate.api.routes import (
    approvals,
    approvers,
    batch,
    certificates,
    data_objects,
    file_encryption,
    keys,
    mount_routes,
    pqc,
    requests,
    service,
    sync_ops,
    timestamps,
)
from hsmgate.auth.authenticator import Authenticator
from hsmgate.bootstrap import build_runtime
from hsmgate.domain.clock import Clock
from hsmgate.settings import Settings
from hsmgate.warnings_filter import silence_dsa_deprecation

silence_dsa_deprecation()  # DSA stays for the TSB's DSA keys; the warning says nothing an operator can act on

DESCRIPTION = """REST gateway to hardware security modules, wire-compatible with the Securosys REST API /
Transaction Security Broker. Keys never leave the partition behind it."""

#: The OpenAPI document (the TSB's springdoc path).
OPENAPI_PATH = "/v3/api-docs"

#: Routers in the order their routes are matched: the key operations first, since they carry
#: nearly all the traffic and Starlette tries routes one by one.
ROUTERS = (
    sync_ops.router, file_encryption.router, batch.router, pqc.router, timestamps.router, certificates.signing_router,
    keys.export_router, keys.router, data_objects.router, certificates.router, requests.router, approvals.router,
    approvers.onboard_router, approvers.router, service.router,
    metrics_router,
)


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """A ready application: schema migrated, backends opened, attestation keys present.
    Raises ConfigError outside dev mode when no authentication method is configured. ``clock``:
    the time of the SKA workflow (tests pass a ``ManualClock``)."""
    settings.require_authentication()
    authenticator = Authenticator(settings)
    runtime = build_runtime(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.scheduler.start()
        yield
        runtime.scheduler.stop()
        runtime.close()

    app = FastAPI(
        title="hsmgate", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        docs_url=None, openapi_url=OPENAPI_PATH, redoc_url=None,  # docs pages: api/docs_pages.py
        redirect_slashes=False,  # "/v1/key/" is a 404, not a redirect built from the Host header
        telemetry=None if settings.otel else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.gateway = runtime.gateway
    app.state.db = runtime.db
    app.state.authenticator = authenticator
    app.state.audit = runtime.audit
    app.state.inline_operations = inline_operations(settings, runtime.db.dialect)  # api/execution.py
    app.state.ska_scheduler = runtime.scheduler
    # Inside the error handlers' middleware (what an application makes of a body cut off at the
    # limit is no bug to log), outside routing, authentication and parsing (api/body_limit.py).
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes,
                       max_batch_body_bytes=max_batch_body_bytes(settings),
                       batch_paths=frozenset(route.path for route in batch.router.routes),
                       max_file_body_bytes=max_file_body_bytes(settings),
                       file_paths=frozenset(route.path for route in file_encryption.router.routes))
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    # counts and times every request, whatever answers it (only the dev-mode guard is outside it)
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics.requests)
    guard_dev_mode(app, settings)  # dev mode: 403 for requests not on loopback, outermost (api/dev_guard.py)
    for router in ROUTERS:  # each route authenticates and checks the role (auth/roles.py): tsb_router
        mount_routes(app, router)
    install_docs_pages(app, openapi_url=OPENAPI_PATH)
    install_approver_app(app)

    @app.get("/", include_in_schema=False, dependencies=[Depends(authorize)])
    def root() -> RedirectResponse:
        return RedirectResponse(SWAGGER_UI_PATH)

    return app


def app_from_env() -> FastAPI:
    """App factory for process managers that import an app themselves (``uvicorn --factory
    hsmgate.app:app_from_env``, granian, gunicorn): Settings from HSMGATE_* and HSMGATE_CONFIG only."""
    return create_app(Settings())
