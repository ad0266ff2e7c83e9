"""Every request gets an id: the caller's ``X-Request-ID`` when it is a sane token, else 128
random bits in hex. It is written to the audit record and returned in the ``X-Request-ID`` response header."""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def request_id(scope: Scope) -> str:
    """The id the middleware assigned ("-" outside a request that passed it)."""
    return (scope.get("state") or {}).get("request_id", "-")


def assign(scope: Scope) -> bytes:
    """Give the request in ``scope`` its id (see the module doc); returns it for the response header."""
    given = next((value for name, value in scope["headers"] if name == HEADER), None)
    rid = given.decode() if given is not None and _SANE.match(given) else os.urandom(16).hex()
    scope.setdefault("state", {})["request_id"] = rid
    return rid.encode()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoded = assign(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (HEADER, encoded)]}
            await send(message)

        await self.app(scope, receive, send_with_id)
