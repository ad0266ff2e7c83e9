"""A shortcut through the middleware stack for the hot routes (api/hot_route.py).

Starlette hands every request through its middleware (server errors, telemetry, body limit, request
id, unexpected errors, exception handlers, exit stack) and then tries the application's routes one
by one; for an Ed25519 signature that is a quarter of the request's CPU. :class:`HotDispatch` sits
first in the stack. A ``POST`` to the exact path of a :class:`HotRoute` goes straight to that
route's handler, and whatever the handler raises is rendered by the application's own exception
handlers (``api/errors.py``), so the answer is byte for byte what the full stack would give,
``X-Request-ID`` included. Every other request takes the full stack.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette._exception_handler import _lookup_exception_handler
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from hsmgate.api import request_id
from hsmgate.api.hot_route import HotRoute


class HotDispatch:
    """ASGI middleware: ``POST`` on a hot route's path → its handler; anything else → ``app``."""

    def __init__(self, app: ASGIApp, routes: Iterable[HotRoute], exception_handlers: dict[Any, Any]) -> None:
        self.app = app
        self._routes = {route.path: (route, route.get_route_handler()) for route in routes if "POST" in route.methods}
        self._exception_handlers = exception_handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self._routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if hot is None or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        route, handler = hot
        rid = request_id.assign(scope)
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            render = _lookup_exception_handler(self._exception_handlers, exc)
            if render is None:  # pragma: no cover - api/errors.py registers a handler for Exception
                raise
            response = await render(request, exc)  # type: ignore[misc]
        response.raw_headers.append((request_id.HEADER, rid))
        await response(scope, receive, send)


class GatewayApp(FastAPI):
    """FastAPI with :class:`HotDispatch` first in its middleware stack, for the :class:`HotRoute`\\ s
    of the routers passed to :meth:`include_hot_router`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hot_routes: list[HotRoute] = []

    def include_hot_router(self, router: APIRouter) -> None:
        """``include_router``, and its hot routes also reachable through the shortcut."""
        self.include_router(router)
        self.hot_routes.extend(route for route in router.routes if isinstance(route, HotRoute))

    def build_middleware_stack(self) -> ASGIApp:
        return HotDispatch(super().build_middleware_stack(), self.hot_routes, self.exception_handlers)
