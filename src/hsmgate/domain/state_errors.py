"""Translation of state database failures into TSB errors: a database that cannot be reached or
written for now is a 503 the caller may retry, not an internal error."""

from __future__ import annotations

from hsmgate.domain.errors import TsbError
from hsmgate.store.database import unavailable


class StateUnavailable(TsbError):
    """The state database (keys' metadata, the audit chain, SKA requests) cannot be reached or
    written now: 503 with 703 ``res.error.io``, the code of a failed audit write."""

    code = 703

    def __init__(self, message: str = "the state database is unavailable; the operation was not performed") -> None:
        super().__init__(message, status=503)


def state_error(error: BaseException) -> StateUnavailable | None:
    """The TSB error for ``error`` when it says the state database is unavailable, else None."""
    return StateUnavailable() if unavailable(error) else None
