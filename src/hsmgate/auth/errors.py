"""The TSB errors of authentication and authorization.

    TsbError
     ├── MissingApiKey            416  401  no X-API-KEY although API keys are configured
     ├── InvalidApiKey            631  401  unknown key, or a key of a role that may not call this path
     ├── MissingAccessToken       406  401  no bearer token although JWT is the configured method
     ├── InvalidAccessToken       617  401  bad signature, algorithm, issuer, audience, time or claims
     ├── MissingLoginInformation  618  401  no usable credential at all (e.g. no mapped client certificate)
     └── NotAllowed               400  403  authenticated, but no role of the caller may call this path

The reference observed 631 → 401 on a live TSB; 416/406/617 → 401 is the same rule (reference §1.1 GAP).
"""

from __future__ import annotations

from hsmgate.domain.errors import TsbError


class MissingApiKey(TsbError):
    code = 416


class InvalidApiKey(TsbError):
    code = 631


class MissingAccessToken(TsbError):
    code = 406


class InvalidAccessToken(TsbError):
    code = 617


class MissingLoginInformation(TsbError):
    code = 618

    def __init__(self, message: str) -> None:
        super().__init__(message, status=401)


class NotAllowed(TsbError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message, status=403)
