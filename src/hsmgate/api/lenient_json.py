"""JSON bodies: the parser's limits, and lenience for what TSB clients send and the TSB accepts.

Every body is parsed by pydantic-core's parser (the one ``model_validate_json`` uses), on both
route classes, so the same limits hold on every route: nesting at most 200 levels deep, numbers of
at most 4300 digits (Python's limit for converting integer strings), strings in UTF-8 with paired
UTF-16 surrogate escapes. A body beyond them is not JSON hsmgate accepts; like any other syntax
error it raises :class:`json.JSONDecodeError`, which both route classes answer with 400 / 621
(never a ``RecursionError`` or ``ValueError`` turning into a 500).

Two departures from strict JSON (RFC 8259) are tolerated, both documented in
``docs/tsb-deviations.md``, because the TSB's official Go client sends them and the TSB (Jackson)
accepts them:

* a **trailing comma** before ``}`` or ``]``: the client sends ``{"certificate": "…",\\n }`` when
  importing a certificate, and the reference recommends tolerating it (§1);
* **raw control characters** (U+0000–U+001F) **inside strings**: the client pastes a multi-line PEM
  CSR into ``certificateSigningRequest`` without escaping its newlines.

When, and only when, the strict parse fails on one of them, the body is parsed again with the
commas that directly precede ``}`` or ``]`` (outside strings) removed and the raw control characters
inside strings written as ``\\u00XX`` escapes (the value the client meant). Anything else that is not
JSON stays an error — a control character outside a string, or one after a backslash, included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

#: What pydantic-core's parser says (as the start of its message) when a comma precedes ``}`` or ``]``,
#: and when a string holds a raw control character.
TRAILING_COMMA = "trailing comma"
CONTROL_CHARACTER = "control character"

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


# A string literal (to its end, or to the end of the body when it is not closed), and inside one an
# escape pair (kept as it is) or a raw control character (escaped).
_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_IN_STRING = re.compile(rb"\\[\s\S]?|[\x00-\x1f]")


def _escape_control(match: re.Match[bytes]) -> bytes:
    token = match[0]
    return token if token.startswith(b"\\") else b"\\u%04x" % token[0]


def _escape_string(match: re.Match[bytes]) -> bytes:
    return _IN_STRING.sub(_escape_control, match[0])


def escape_control_characters(body: bytes) -> bytes:
    """``body`` with every raw control character (U+0000–U+001F) inside a string literal written
    as its ``\\u00XX`` escape; characters after a backslash, and outside strings, are kept (so
    they stay errors). One linear pass, like :func:`drop_trailing_commas`."""
    return _STRINGS.sub(_escape_string, body)


def is_tolerated(reason: str) -> bool:
    """Whether a parser error message (pydantic-core's) is about a departure from strict JSON that
    is tolerated: a trailing comma, or a raw control character in a string (module text)."""
    return reason.startswith((TRAILING_COMMA, CONTROL_CHARACTER))


def decode_error(reason: str) -> json.JSONDecodeError:
    """The error a route answers with 400 / 621; ``reason`` says where (``… at line 1 column 7``)."""
    return json.JSONDecodeError(reason, "", 0)


def relax(body: bytes) -> bytes:
    """``body`` with both tolerated departures repaired (the parser reports only the first)."""
    return escape_control_characters(drop_trailing_commas(body))


def loads_lenient(body: bytes) -> Any:
    """Strict JSON, else (after a trailing comma or a raw control character in a string only) the
    body :func:`relax`-ed; raises ``json.JSONDecodeError`` for anything else, the parser's limits
    included (module text)."""
    try:
        return from_json(body)
    except ValueError as strict_error:
        reason = str(strict_error)
    if not is_tolerated(reason):
        raise decode_error(reason)
    try:
        return from_json(relax(body))
    except ValueError:
        raise decode_error(reason) from None


class LenientJsonRequest(Request):
    """A request whose ``json()`` is :func:`loads_lenient`: the tolerated departures, the parser's limits."""

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
