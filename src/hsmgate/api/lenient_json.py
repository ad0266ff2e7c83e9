"""Lenient JSON parsing for TSB clients that send a trailing comma.

The official Go client sends ``{"certificate": "…",\\n }`` when importing a certificate, and the
reference recommends tolerating it (§1). Bodies are parsed strictly first; only when that fails is
the body re-parsed with commas that directly precede ``}`` or ``]`` (outside strings) removed.
Anything else that is not JSON stays an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def drop_trailing_commas(text: str) -> str:
    """``text`` without commas that follow a value and precede (after white space) ``}`` or ``]``;
    commas inside string literals, and commas with no value before them (``[,]``), are kept."""
    out: list[str] = []
    in_string = escaped = False
    pending_comma: int | None = None
    last_significant = ""
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in "}]" and pending_comma is not None:
            del out[pending_comma]
        if not char.isspace():
            pending_comma = None
        if char == "," and last_significant not in ("", "[", "{", ","):
            pending_comma = len(out)
        elif char == '"':
            in_string = True
        if not char.isspace():
            last_significant = char
        out.append(char)
    return "".join(out)


def loads_lenient(body: bytes) -> Any:
    """Strict JSON, else JSON with trailing commas removed; raises ``json.JSONDecodeError``."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as strict_error:
        try:
            return json.loads(drop_trailing_commas(body.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise strict_error from None


class LenientJsonRequest(Request):
    """A request whose ``json()`` tolerates trailing commas."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_lenient(await self.body())
        return self._json


class TsbRoute(APIRoute):
    """Route class of every hsmgate router: parses JSON bodies leniently."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(LenientJsonRequest(request.scope, request.receive))

        return route_handler
