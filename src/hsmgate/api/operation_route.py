"""Route class of every key operation: sign, verify, their batches, encrypt, decrypt, wrap, unwrap,
HMAC, ML-KEM, certificates, RFC 3161 timestamps, export.

An :class:`OperationRoute` is an ordinary FastAPI route behind the application's one middleware
stack: it is declared with the same decorator, appears in OpenAPI with its body model, response
model and security schemes, and its errors are rendered by the application's exception handlers.
Only its handler differs from FastAPI's generic one (whose dependency solving, ``json.loads`` then
``validate_python`` and ``jsonable_encoder`` cost most of a fast signature). It does, in a fixed
order:

1. authenticate and authorise the caller (:func:`hsmgate.api.deps.authorize`, the app-wide
   dependency of every route) — before the body is looked at, so an unauthenticated caller learns
   nothing about what it sent;
2. parse and validate the body in one pass (``model_validate_json``, pydantic-core); a body with a
   trailing comma or a raw control character in a string is re-read leniently, and the parser's
   limits (nesting, digits, surrogates) are
   those of every other route (``api/lenient_json.py``); errors are :class:`RequestValidationError`
   with FastAPI's ``("body", …)`` locations, so they answer the same 600 / 621 bodies;
3. run the endpoint — a plain ``def`` that maps the wire DTO onto one call of the partition's
   key-use gate (``domain/key_use.py``) and back — with the arguments its signature asks for, by
   type: the body model, :data:`ServicesDep`, :data:`CallerDep`, :data:`SettingsDep`, and a ``str``
   parameter named like a parameter of the route's path (the deprecated ``GET …/{keyName}/…``
   forms, which have no body); any other parameter is refused when the route is declared, never
   silently left out. It runs through
   :func:`hsmgate.api.execution.run_operation`: inline or in the threadpool, its audit records
   committed before the answer leaves, with the key generation read once for the whole operation
   (a batch of 1000 signatures included: ``store/key_generation.py``);
4. serialise a returned model with its own pydantic-core serializer (a returned ``Response`` is
   sent as it is).

A route that takes a file (a parameter typed :class:`UploadFile`: ``/v1/fileEncrypt``,
``/v1/synchronousFileDecrypt``) reads a ``multipart/form-data`` body instead, after step 1: the
JSON part named like the body model's class (the TSB's part names, e.g.
``SignedFileEncryptRequestDto``, sent as a field or as a file) validated as in step 2, and the
part ``file``, which Starlette's parser spools to an anonymous temporary file (mode 0600, unlinked
when created) beyond 1 MiB, so memory stays bounded whatever the file's size. Such a route runs
in the threadpool (a file takes seconds), and its temporary files are closed once the answer has
been sent.
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Collection, Coroutine
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from hsmgate.api.deps import (
    CallerDep,
    ServicesDep,
    SettingsDep,
    api_key_scheme,
    authorize,
    bearer_scheme,
    caller_of,
    current_principal,
)
from hsmgate.api.execution import run_operation
from hsmgate.api.lenient_json import TsbRoute, is_tolerated, loads_lenient
from hsmgate.domain import errors
from hsmgate.domain.principal import Principal

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
        reason = str(errors[0].get("ctx", {}).get("error", "syntax error"))
    if not is_tolerated(reason):  # not JSON, or beyond the parser's limits (api/lenient_json.py)
        raise _json_invalid(0, reason)
    try:  # a trailing comma, or a raw newline in a string, as the TSB's Go client sends them
        document = loads_lenient(raw)
    except json.JSONDecodeError as exc:
        raise _json_invalid(exc.pos, exc.msg) from None
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


#: What a parameter of an endpoint receives: the body, the services, the caller, the settings,
#: or the value of the path parameter of the same name.
PATH = "path"
#: The multipart part of a file route that carries the file (the TSB's name).
FILE_PART = "file"
#: Largest JSON part of a multipart request (the file part has no such limit: it is spooled).
JSON_PART_BYTES = 1024 * 1024


async def read_form(request: Request, json_part: str) -> FormData:
    """The multipart body of a file route: 600 naming what is missing or malformed."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise errors.ValidationFailed(f"the request must be multipart/form-data with the parts '{json_part}' and "
                                      f"'{FILE_PART}'")
    try:
        return await request.form(max_files=2, max_fields=2, max_part_size=JSON_PART_BYTES)
    except HTTPException as exc:  # Starlette's answer to a malformed multipart body
        raise errors.ValidationFailed(f"malformed multipart body: {exc.detail}") from None


async def form_parts(form: FormData, json_part: str) -> tuple[bytes, UploadFile]:
    """The JSON part (a field, or a file part of at most 1 MiB) and the file part of ``form``."""
    document = form.get(json_part)
    if isinstance(document, UploadFile):
        raw = await document.read(JSON_PART_BYTES + 1)
        if len(raw) > JSON_PART_BYTES:
            raise errors.ValidationFailed(f"the part '{json_part}' is larger than {JSON_PART_BYTES} bytes")
    elif document is None:
        raise errors.ValidationFailed(f"the multipart part '{json_part}' is missing")
    else:
        raw = document.encode()
    upload = form.get(FILE_PART)
    if not isinstance(upload, UploadFile):
        raise errors.ValidationFailed(f"the multipart part '{FILE_PART}' is missing or is not a file")
    return raw, upload


def _argument_kinds(endpoint: Callable[..., Any],
                    path_parameters: Collection[str]) -> tuple[type[BaseModel] | None, dict[str, str]]:
    """The body model of ``endpoint`` (None: the route takes no body) and, per parameter, what to
    pass: body, services, caller, settings or a path parameter. Raises TypeError for anything else,
    and for an endpoint that takes neither a body nor a path parameter."""
    hints = typing.get_type_hints(endpoint, include_extras=True)
    kinds: dict[str, str] = {}
    body: type[BaseModel] | None = None
    for name in inspect.signature(endpoint).parameters:
        hint = hints.get(name)
        if typing.get_origin(hint) is typing.Annotated and hint not in (ServicesDep, CallerDep, SettingsDep):
            hint = typing.get_args(hint)[0]  # a body model with its OpenAPI part name (Body(alias=…))
        if isinstance(hint, type) and issubclass(hint, UploadFile):  # FastAPI's, for OpenAPI; gets Starlette's
            kinds[name] = FILE_PART
        elif hint == ServicesDep:
            kinds[name] = "services"
        elif hint == CallerDep:
            kinds[name] = "caller"
        elif hint == SettingsDep:
            kinds[name] = "settings"
        elif hint is str and name in path_parameters:
            kinds[name] = PATH
        elif isinstance(hint, type) and issubclass(hint, BaseModel) and body is None:
            body, kinds[name] = hint, "body"
        else:
            raise TypeError(f"OperationRoute {endpoint.__name__}: unsupported parameter {name}: {hint!r}")
    if body is None and PATH not in kinds.values():
        raise TypeError(f"OperationRoute {endpoint.__name__}: no body model parameter")
    return body, kinds


class OperationRoute(TsbRoute):
    """A :class:`TsbRoute` whose handler runs a key operation (module text)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        if inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"OperationRoute {endpoint.__name__} must be a plain def: run_operation runs it")
        model, kinds = _argument_kinds(endpoint, self.param_convertors.keys())
        takes_file = FILE_PART in kinds.values()
        if takes_file and model is None:
            raise TypeError(f"OperationRoute {endpoint.__name__}: a file route needs a body model")
        part_name = model.__name__ if model is not None else ""
        status_code = self.status_code or 200

        async def handler(request: Request) -> Response:
            principal = await authorize(request, await api_key_scheme(request), await bearer_scheme(request))
            if not takes_file:
                return await answer(request, principal, None if model is None else await request.body(), None)
            form = await read_form(request, part_name)
            try:
                raw, upload = await form_parts(form, part_name)
                response = await answer(request, principal, raw, upload)
            except BaseException:
                await form.close()
                raise
            response.background = BackgroundTask(form.close)  # the temporary files, once the file is sent
            return response

        async def answer(request: Request, principal: Principal | None, raw: bytes | None, upload: UploadFile | None) -> Response:
            content_type = "application/json" if upload is not None else request.headers.get("content-type")
            body = None if model is None or raw is None else parse_body(model, raw, content_type)
            caller_principal = await current_principal(principal)
            state = request.app.state
            values = {"body": body, "services": state.gateway.services(caller_principal.partition),
                      "caller": caller_of(request, caller_principal), "settings": state.settings,
                      FILE_PART: upload}
            arguments = {name: request.path_params[name] if kind == PATH else values[kind]
                         for name, kind in kinds.items()}

            def call() -> object:
                with key_state_pinned(request):
                    return endpoint(**arguments)

            result = await run_operation(request, call, long=takes_file)
            if isinstance(result, Response):
                return result
            if not isinstance(result, BaseModel):
                raise TypeError(f"OperationRoute {endpoint.__name__} returned {type(result).__name__}")
            return Response(result.__pydantic_serializer__.to_json(result, by_alias=True), status_code=status_code,
                            media_type=_JSON)

        return handler
