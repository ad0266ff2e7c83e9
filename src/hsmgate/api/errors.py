"""Rendering of every failure as a TSB error body; registered once on the app.

* :class:`TsbError` → its code, reason and status.
* Request validation → 600 naming the field (invalid enum values as ``Value 'X' is not valid for
  field Y``); malformed JSON → 621.
* Unknown route → 404, wrong method → 405, both with code 102 (``res.error.operation.unreachable``).
* The state database unreachable or unwritable (connection lost or refused, disk full): 503 with
  703, logged in one line (at most one a second, with the count of those not logged).
* Anything else is a bug: 500 with code 1 and no internals in the body (the traceback is logged).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hsmgate.domain.errors import REASONS, TsbError
from hsmgate.domain.state_errors import state_error

log = logging.getLogger("hsmgate.api")


def error_response(code: int, message: str, status: int) -> JSONResponse:
    body = {"errorCode": code, "reason": REASONS.get(code, "res.error.general"), "message": message}
    return JSONResponse(body, status_code=status)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    # drop pydantic's union/validator markers such as 'function-before[...]'
    parts = [p for p in parts if "[" not in p]
    return ".".join(parts) if parts else "body"


def validation_message(error: dict[str, Any]) -> tuple[int, str]:
    kind = error.get("type", "")
    loc = tuple(error.get("loc", ()))
    field = _field(loc)
    if kind == "json_invalid":
        return 621, f"request body is not valid JSON: {error.get('ctx', {}).get('error', 'syntax error')}"
    if kind == "missing":
        if field == "body":
            return 600, "request body must not be empty"
        return 600, f"'{field}' must not be null"
    if kind == "enum":
        return 600, f"Value '{error.get('input')}' is not valid for field '{field}'"
    if kind in ("model_attributes_type", "model_type", "dict_type") and field == "body":
        return 600, "request body must be a JSON object"
    msg = str(error.get("msg", "is invalid"))
    msg = msg.removeprefix("Value error, ")
    return 600, f"'{field}' {msg[0].lower() + msg[1:] if msg else 'is invalid'}"


async def _tsb_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TsbError)
    return error_response(exc.code, exc.message, exc.status)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    code, message = validation_message(errors[0]) if errors else (600, "invalid request")
    return error_response(code, message, 400)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(102, "no such endpoint", 404)
    if exc.status_code == 405:
        return error_response(102, "method not allowed for this endpoint", 405)
    if exc.status_code == 400:
        return error_response(600, str(exc.detail), 400)
    return error_response(103, str(exc.detail), exc.status_code)


class _Throttle:
    """At most one log line a second for a repeated condition, saying how many were not logged."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._next = 0.0
        self._skipped = 0

    def due(self) -> int | None:
        """None: do not log now; else how many were skipped since the last line."""
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                self._skipped += 1
                return None
            skipped, self._skipped, self._next = self._skipped, 0, now + self.interval
            return skipped


_state_unavailable_log = _Throttle()


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    translated = state_error(exc)
    if translated is not None:
        skipped = _state_unavailable_log.due()
        if skipped is not None:
            more = f" ({skipped} more since the last such line)" if skipped else ""
            log.warning("state database unavailable, answered 503 / 703: %s%s",
                        " ".join(str(exc).split())[:300] or type(exc).__name__, more)
        return error_response(translated.code, translated.message, translated.status)
    log.exception("unexpected error", exc_info=exc)
    return error_response(1, "internal error; see the server log", 500)


class UnexpectedErrorMiddleware:
    """Answers an unexpected exception with the 500 TSB body *without re-raising it*.

    Starlette's own handler for ``Exception`` (ServerErrorMiddleware) sends the response and then
    re-raises, and uvicorn answers a re-raised exception by closing the socket: a keep-alive
    client's next request on that connection is reset. Catching here keeps the connection usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for an error body; let the server drop the connection
                raise
            response = await _unexpected(Request(scope), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TsbError, _tsb_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)  # fallback for errors outside the middleware
    app.add_middleware(UnexpectedErrorMiddleware)
