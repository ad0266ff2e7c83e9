"""JSON bodies: the parser's limits, and lenience for TSB clients that send a trailing comma.

Every body is parsed by pydantic-core's parser (the one ``model_validate_json`` uses), on both
route classes, so the same limits hold on every route: nesting at most 200 levels deep, numbers of
at most 4300 digits (Python's limit for converting integer strings), strings in UTF-8 with paired
UTF-16 surrogate escapes. A body beyond them is not JSON hsmgate accepts; like any other syntax
error it raises :class:`json.JSONDecodeError`, which both route classes answer with 400 / 621
(never a ``RecursionError`` or ``ValueError`` turning into a 500).

The official Go client sends ``{"certificate": "…",\\n }`` when importing a certificate, and the
reference recommends tolerating it (§1). When, and only when, the strict parse fails on a trailing
comma, the body is parsed again with the commas that directly precede ``}`` or ``]`` (outside
strings) removed. Anything else that is not JSON stays an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

#: What pydantic-core's parser says (as the start of its message) when a comma precedes ``}`` or ``]``.
TRAILING_COMMA = "trailing comma"

# One pass of the C regex engine, linear in the body: a string literal (to its end, or to the end
# of the body when it is not closed), a comma with no value before it (kept: "[,]" stays invalid),
# or a comma directly before "}" or "]" (dropped).
_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)|[\[{,][ \t\r\n]*+,|,(?=[ \t\r\n]*+[}\]])', re.DOTALL)


def _drop_comma(match: re.Match[bytes]) -> bytes:
    return b"" if match[0] == b"," else match[0]


def drop_trailing_commas(body: bytes) -> bytes:
    """``body`` without commas that follow a value and precede (after white space) ``}`` or ``]``;
    commas inside string literals, and commas with no value before them (``[,]``), are kept."""
    return _TOKENS.sub(_drop_comma, body)


def is_trailing_comma(reason: str) -> bool:
    """Whether a parser error message (pydantic-core's) is about a trailing comma."""
    return reason.startswith(TRAILING_COMMA)


def decode_error(reason: str) -> json.JSONDecodeError:
    """The error a route answers with 400 / 621; ``reason`` says where (``… at line 1 column 7``)."""
    return json.JSONDecodeError(reason, "", 0)


def loads_lenient(body: bytes) -> Any:
    """Strict JSON, else (after a trailing comma only) JSON with trailing commas removed; raises
    ``json.JSONDecodeError`` for anything else, the parser's limits included (module text)."""
    try:
        return from_json(body)
    except ValueError as strict_error:
        reason = str(strict_error)
    if not is_trailing_comma(reason):
        raise decode_error(reason)
    try:
        return from_json(drop_trailing_commas(body))
    except ValueError:
        raise decode_error(reason) from None


class LenientJsonRequest(Request):
    """A request whose ``json()`` tolerates trailing commas and keeps the parser's limits."""

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
