"""The credential headers, read only when the request carries each of them at most once.

Starlette's ``headers.get`` returns the *first* of several equal headers. A request with two
``X-API-KEY`` headers (or two ``Authorization`` headers) would then be judged by the first one,
while a proxy, a web application firewall or a log in front of hsmgate may look at the last
one, or at both joined: the parties disagree about who is calling. Such a request is refused
with 401 before anything else looks at it (631 for API keys, 617 for bearer tokens).

These classes keep FastAPI's security schemes (OpenAPI ``securitySchemes``, ``Security(...)``
dependencies); :mod:`hsmgate.api.deps` builds its ``api_key_scheme`` and ``bearer_scheme`` from them.
"""

from __future__ import annotations

from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from hsmgate.auth.errors import InvalidAccessToken, InvalidApiKey


class SingleApiKeyHeader(APIKeyHeader):
    """``APIKeyHeader`` that refuses a request carrying the header more than once."""

    async def __call__(self, request: HTTPConnection) -> str | None:
        if len(request.headers.getlist(self.model.name)) > 1:
            raise InvalidApiKey(f"the request carries more than one {self.model.name} header")
        return await super().__call__(request)


class SingleBearer(HTTPBearer):
    """``HTTPBearer`` that refuses a request carrying ``Authorization`` more than once."""

    async def __call__(self, request: HTTPConnection) -> HTTPAuthorizationCredentials | None:
        if len(request.headers.getlist("Authorization")) > 1:
            raise InvalidAccessToken("the request carries more than one Authorization header")
        return await super().__call__(request)
