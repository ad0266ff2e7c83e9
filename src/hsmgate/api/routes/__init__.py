"""One router per TSB tag. Every router is made by :func:`tsb_router`, so every route parses JSON
bodies leniently (a trailing comma, raw newlines inside strings, as the TSB's Go client sends them:
``api/lenient_json.py``).

Routes that answer nothing (deletions, approvals, …) answer 200 with an **empty body**, as the TSB
does, never a JSON ``null``: decorate them with ``**empty_response()`` and return :func:`empty`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Response

from hsmgate.api.deps import authorize
from hsmgate.api.lenient_json import TsbRoute


def tsb_router(**kwargs: Any) -> APIRouter:
    """An ``APIRouter`` whose routes are :class:`TsbRoute`\\ s (or ``route_class``, a subclass:
    :class:`hsmgate.api.operation_route.OperationRoute` for key operations), each of which depends
    on :func:`hsmgate.api.deps.authorize` (authentication and the role check of ``auth/roles.py``).
    The routes carry that dependency themselves, so the app can mount them directly
    (:func:`mount_routes`)."""
    kwargs.setdefault("route_class", TsbRoute)
    kwargs["dependencies"] = [Depends(authorize), *kwargs.get("dependencies", ())]
    return APIRouter(**kwargs)


def mount_routes(app: FastAPI, router: APIRouter) -> None:
    """Serve ``router``'s routes from the app's own route table. ``include_router`` would wrap them
    in an included-router entry that FastAPI walks on every request (bench/results/design-measurements.md);
    a router of :func:`tsb_router` needs nothing of what it adds (no prefix, and its routes carry
    their tags, responses and the authorisation dependency themselves)."""
    if not any(getattr(d, "dependency", None) is authorize for d in router.dependencies):
        raise ValueError("only routers made by tsb_router (whose routes check authorisation) are mounted so")
    app.router.routes.extend(router.routes)


def empty_response(description: str = "Done; the answer has an empty body") -> dict[str, Any]:
    """Decorator arguments of a route answering 200 without a body (OpenAPI: no content)."""
    return {"response_class": Response, "responses": {200: {"description": description}}}


def empty() -> Response:
    """200 with an empty body."""
    return Response(status_code=200)


_UNSAFE_FILE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


def safe_file_name(label: str) -> str:
    """``label`` as a file name any unzip tool or browser keeps in the target directory: characters
    other than letters, digits, ``.``, ``_`` and ``-`` become ``_``, and it never starts with a dot."""
    name = _UNSAFE_FILE_CHARACTERS.sub("_", label)
    return "_" + name if name.startswith(".") else name


def download(content: bytes, media_type: str, file_name: str) -> Response:
    """200 with ``content`` as a file download named ``file_name`` (made safe)."""
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{safe_file_name(file_name)}"'})


def download_responses(description: str, media_type: str) -> dict[str, Any]:
    """Decorator arguments of a route answering a file (OpenAPI: binary content of ``media_type``)."""
    return {"response_class": Response, "responses": {200: {
        "description": description, "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}}}
