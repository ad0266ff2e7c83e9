"""Dev mode answers only on loopback, whoever starts the app.

``hsmgate serve --dev`` refuses to bind anything but loopback (``Settings.check_bind``), but the
app can be started by other hands: ``HSMGATE_DEV=true uvicorn --factory hsmgate.app:app_from_env
--host 0.0.0.0``, gunicorn, a container entry point. Without authentication every caller is the
developer with every role, so the app itself checks where each request arrived:
:class:`DevModeGuard` answers a request whose local socket address (``scope["server"]``) is not a
loopback address with 403 and a TSB error body, before anything else runs. A request whose local
address is unknown (a Unix socket: uvicorn reports none) is refused too. The start-up of the app
(ASGI lifespan) logs the rule once.

The guard must see *every* request before routing, authentication or any other middleware:
:func:`guard_dev_mode` adds it last, so it is the outermost middleware of the app's one stack.
"""

from __future__ import annotations

import ipaddress
import logging

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from hsmgate.api.errors import error_response
from hsmgate.settings import Settings

log = logging.getLogger("hsmgate.api")

#: TSB code of the refusal: res.error.security.not.allowed (as for a caller without the role).
REFUSED_CODE = 400


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.x.y.z; False for anything else,
    names included (``scope["server"]`` holds the socket's numeric address)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


class DevModeGuard:
    """Pure ASGI middleware of dev mode: requests not arriving on a loopback address get 403."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            log.warning("dev mode: no authentication; requests that do not arrive on a loopback address are "
                        "refused with 403")
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        if server is not None and is_loopback(str(server[0])):
            await self.app(scope, receive, send)
            return
        where = f"{server[0]}:{server[1]}" if server is not None else "a socket without an address"
        if scope["type"] == "websocket":  # none today; close rather than serve
            await send({"type": "websocket.close", "code": 1008})
            return
        response = error_response(REFUSED_CODE, f"dev mode serves only on loopback; this request arrived on {where}",
                                  403)
        await response(scope, receive, send)


def guard_dev_mode(app: Starlette, settings: Settings) -> None:
    """In dev mode, add :class:`DevModeGuard` to ``app``'s one middleware stack; called after every
    other ``add_middleware``, so it is the outermost of them (only Starlette's error middleware,
    which merely renders exceptions, sits outside it). Outside dev mode: nothing."""
    if settings.dev:
        app.add_middleware(DevModeGuard)
