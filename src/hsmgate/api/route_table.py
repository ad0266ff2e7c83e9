"""The routes an application really serves, walked through included routers and mounts.

``app.routes`` is not that list on every FastAPI version: older versions copy the routes of an
included router into the app's list, newer ones (0.16x) keep one entry per ``include_router`` call
that holds the router itself (``original_router``, with the prefix in ``include_context``), and a
Starlette ``Mount`` holds its own ``routes`` (none for a plain ASGI app: then everything below its
path is one route of method ``*``). :func:`mounted_routes` follows all of them, so a check built on
it (``docs/endpoints.md`` lists every route) sees the routes a request can reach, whatever the
framework version; an object of no known shape fails the walk instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

#: Methods Starlette adds by itself (HEAD to every GET); not listed unless a route asks for them alone.
_IMPLICIT_METHODS = frozenset({"HEAD"})


@dataclass(frozen=True, slots=True)
class MountedRoute:
    """One method of one served path. ``api``: a FastAPI route (an endpoint of the API, with the
    app's authentication); otherwise a plain Starlette route (the OpenAPI document, Swagger UI)."""

    method: str
    path: str
    api: bool
    tags: tuple[str, ...] = ()
    summary: str | None = None
    deprecated: bool = False
    status_code: int | None = None
    include_in_schema: bool = True


def mounted_routes(app: FastAPI) -> list[MountedRoute]:
    """Every (method, path) ``app`` serves, in matching order."""
    return list(_walk(app.router.routes, ""))


def _walk(routes: Sequence[BaseRoute], prefix: str) -> Iterator[MountedRoute]:
    for route in routes:
        included = getattr(route, "original_router", None)  # an include_router entry (FastAPI 0.16x)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(included.routes, prefix + str(getattr(context, "prefix", "") or ""))
            continue
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        children = getattr(route, "routes", None)
        if children is not None and methods is None and not isinstance(route, APIRoute):
            if children:  # a Mount / Host of a router or sub-application
                yield from _walk(children, prefix + str(path or ""))
            else:  # a Mount of a plain ASGI app: everything below its path
                yield MountedRoute("*", prefix + str(path or "") + "/{path:path}", False)
            continue
        if path is None:
            raise TypeError(f"a route of unknown shape: {route!r}")
        if not methods:  # a websocket route: not an HTTP endpoint
            continue
        explicit = sorted(set(methods) - _IMPLICIT_METHODS) or sorted(methods)
        for method in explicit:
            if isinstance(route, APIRoute):
                yield MountedRoute(method, prefix + route.path, True, tuple(str(t) for t in route.tags or ()),
                                   route.summary, bool(route.deprecated), route.status_code, route.include_in_schema)
            else:
                yield MountedRoute(method, prefix + path, False,
                                   include_in_schema=bool(getattr(route, "include_in_schema", True)))
