"""Route class of the hot synchronous endpoints (sign, verify and their batches).

FastAPI's generic request handling — the dependency solver, body parsing through ``json.loads``
then ``validate_python``, response serialisation through ``jsonable_encoder`` — costs about three
quarters of an Ed25519 sign request (py-spy; the signature itself is 5 %). A :class:`HotRoute` is
still an ordinary FastAPI route: it is declared with the same decorator, appears in OpenAPI with
its body model, response model and security schemes, and runs behind the same middleware and
exception handlers. Only its handler differs; it does, in a fixed order, what FastAPI would:

1. authenticate and authorise the caller (:func:`hsmgate.api.deps.authorize`, the app-wide
   dependency of every route) — before the body is looked at, so an unauthenticated caller learns
   nothing about what it sent;
2. parse and validate the body in one pass (``model_validate_json``, pydantic-core); a body that is
   not strict JSON is re-read leniently (trailing commas, ``api/lenient_json.py``); errors are
   :class:`RequestValidationError` with FastAPI's ``("body", …)`` locations, so they answer the
   same 600 / 621 bodies;
3. call the endpoint with the arguments its signature asks for, by type: the body model,
   :data:`ServicesDep`, :data:`SettingsDep`, :class:`Request` — any other parameter is refused when
   the route is declared, never silently left out;
4. read the key generation once for the whole operation (a batch of 1000 signatures included), so
   cached key state costs no database access per lookup (``store/key_generation.py``);
5. serialise a returned model with its own pydantic-core serializer (a returned ``Response`` is
   sent as it is).
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from hsmgate.api.deps import (
    ServicesDep,
    SettingsDep,
    api_key_scheme,
    authorize,
    bearer_scheme,
    current_principal,
    partition_services,
)
from hsmgate.api.lenient_json import TsbRoute, loads_lenient

_JSON = "application/json"


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    subtype = content_type.split(";", 1)[0].strip().lower().rpartition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


def parse_body(model: type[BaseModel], raw: bytes, content_type: str | None) -> BaseModel:
    """``raw`` validated as ``model``, failing exactly as FastAPI's body handling does."""
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required",
                                       "input": None}])
    if not _is_json(content_type):  # FastAPI validates the raw bytes then: never an object
        raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",),
                                       "msg": "Input should be a valid dictionary or object", "input": raw}])
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if not errors or errors[0]["type"] != "json_invalid":
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    try:  # not strict JSON: perhaps a trailing comma, as the TSB's Go client sends
        document = loads_lenient(raw)
    except json.JSONDecodeError as exc:
        raise _json_invalid(exc.pos, exc.msg) from None
    except UnicodeDecodeError as exc:
        raise _json_invalid(exc.start, "the body is not UTF-8") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in exc.errors(include_url=False)]) from None


def key_state_pinned(request: Request) -> AbstractContextManager[None]:
    """One key-generation check for the whole operation instead of one per cache lookup
    (``store/key_generation.py``: :meth:`KeyGeneration.pinned`)."""
    db = getattr(request.app.state, "db", None)
    return db.key_generation.pinned() if db is not None else nullcontext()


def _json_invalid(position: int, reason: str) -> RequestValidationError:
    return RequestValidationError([{"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error",
                                    "input": {}, "ctx": {"error": reason}}])


def _argument_kinds(endpoint: Callable[..., Any]) -> tuple[type[BaseModel], dict[str, str]]:
    """The body model of ``endpoint`` and, per parameter, what to pass: body, services, settings
    or request. Raises TypeError for anything else."""
    hints = typing.get_type_hints(endpoint, include_extras=True)
    kinds: dict[str, str] = {}
    body: type[BaseModel] | None = None
    for name in inspect.signature(endpoint).parameters:
        hint = hints.get(name)
        if hint == ServicesDep:
            kinds[name] = "services"
        elif hint == SettingsDep:
            kinds[name] = "settings"
        elif hint is Request:
            kinds[name] = "request"
        elif isinstance(hint, type) and issubclass(hint, BaseModel) and body is None:
            body, kinds[name] = hint, "body"
        else:
            raise TypeError(f"HotRoute {endpoint.__name__}: unsupported parameter {name}: {hint!r}")
    if body is None:
        raise TypeError(f"HotRoute {endpoint.__name__}: no body model parameter")
    return body, kinds


class HotRoute(TsbRoute):
    """A :class:`TsbRoute` whose handler skips FastAPI's generic dependency solver (module doc)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"HotRoute {endpoint.__name__} must be async")
        model, kinds = _argument_kinds(endpoint)
        status_code = self.status_code or 200
        wants_services = "services" in kinds.values()

        async def handler(request: Request) -> Response:
            principal = await authorize(request, await api_key_scheme(request), await bearer_scheme(request))
            body = parse_body(model, await request.body(), request.headers.get("content-type"))
            services = None
            if wants_services:
                caller = await current_principal(principal)
                services = await partition_services(request, request.app.state.gateway, caller)
            values = {"body": body, "services": services, "settings": request.app.state.settings,
                      "request": request}
            with key_state_pinned(request):
                result = await endpoint(**{name: values[kind] for name, kind in kinds.items()})
            if isinstance(result, Response):
                return result
            if not isinstance(result, BaseModel):
                raise TypeError(f"HotRoute {endpoint.__name__} returned {type(result).__name__}")
            return Response(result.__pydantic_serializer__.to_json(result), status_code=status_code,
                            media_type=_JSON)

        return handler
