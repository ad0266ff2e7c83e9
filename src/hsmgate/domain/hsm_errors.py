"""Translation of backend exceptions into TSB errors — the one place where that happens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hsmgate.domain import errors
from hsmgate.hsm import base

#: What the TSB says when a key attribute forbids an operation (observed live: 701
#: ``KEY_FUNCTION_NOT_PERMITTED``). hsmgate answers it with HTTP 400, not the TSB's 500: the
#: caller asked for something the key does not allow; nothing failed on the server.
KEY_FUNCTION_NOT_PERMITTED = "KEY_FUNCTION_NOT_PERMITTED"


@contextmanager
def translated() -> Iterator[None]:
    """Run backend calls, turning :class:`hsmgate.hsm.base.HsmError` into :class:`TsbError`."""
    try:
        yield
    except base.KeyNotFound as exc:
        raise errors.KeyNotFound(str(exc)) from None
    except base.KeyExists as exc:
        raise errors.KeyAlreadyExists(str(exc)) from None
    except base.KeyExhausted as exc:
        raise errors.OperationForbiddenForKey(str(exc)) from None
    except base.OperationNotPermitted as exc:
        raise errors.TsbError(f"{KEY_FUNCTION_NOT_PERMITTED}: {exc}", code=701, status=400) from None
    except base.UnsupportedByBackend as exc:
        raise errors.UnsupportedOperation(str(exc)) from None
    except base.InvalidInput as exc:
        raise errors.InvalidPayload(str(exc)) from None
    except base.DecryptFailed as exc:
        raise errors.TsbError(str(exc), code=410) from None
    except base.BackendUnavailable as exc:
        raise errors.HsmFailure(str(exc), status=503) from None
    except base.HsmError as exc:
        raise errors.HsmFailure(str(exc)) from None
