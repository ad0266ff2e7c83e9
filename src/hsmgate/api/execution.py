"""Where a route runs a backend operation: inline on the event loop, or in the threadpool.

FastAPI runs a ``def`` route in Starlette's threadpool: every such hop costs tens of µs of CPU
(measured: ~200 µs of ~900 µs per Ed25519 sign request under load), and buys nothing for the
soft token, whose operations hold the GIL anyway and take 30 µs (Ed25519) to 1 ms (RSA-2048).
``async`` routes therefore call :func:`run_operation`, which runs the call inline when
``app.state.inline_operations`` says every step of an operation is short and never waits on I/O
(soft token, SQLite state, no per-request audit commit), and in the threadpool otherwise (a
PKCS#11 HSM, a PostgreSQL round trip, an audit commit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from hsmgate.settings import Settings

T = TypeVar("T")


def inline_operations(settings: Settings, database_dialect: str) -> bool:
    """True when a key operation never blocks on I/O: the soft token on SQLite without audit."""
    return (settings.backend == "soft" and database_dialect == "sqlite"
            and not getattr(settings, "audit_enabled", False))


async def run_operation(request: Request, call: Callable[[], T]) -> T:
    if getattr(request.app.state, "inline_operations", False):
        return call()
    return await run_in_threadpool(call)
