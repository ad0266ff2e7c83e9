"""The two values every call on a pooled session receives: the session it runs on (:class:`Lease`) and what
it is doing (:class:`CallContext`).

``Pkcs11Partition._call(action, label, run)`` checks a :class:`Lease` out of the partition's pool and calls
``run(lease, ctx)``; ``run`` may name the mechanism in ``ctx`` once it knows it, so that an error raised by
the token says which key and which mechanism failed (:func:`hsmgate.hsm.pkcs11.errors.translate`). Both the
partition and its optional operations (``operations.py``) write such ``run`` functions, which is why these
types live here and not in either of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Lease:
    """A logged-in R/W session of a partition's pool.

    ``generation`` is the module's re-initialisation count and ``epoch`` the pool's epoch when the session was
    opened: a lease from an earlier generation or epoch is never used again (its handle may have been reused).
    Keys are remembered per partition, not per session (``keycache.py``).
    """

    session: Any  # pkcs11.Session: python-pkcs11's session classes are untyped Cython types
    generation: int
    epoch: int


@dataclass(slots=True)
class CallContext:
    """What a call is doing, for error messages: ``"<action> of key '<label>' with <mechanism> failed: ..."``.

    ``mechanism`` is a ``CKM_`` name (:func:`hsmgate.hsm.pkcs11.mechanisms.ckm_name`), set by the call once it
    has chosen one."""

    action: str
    label: str | None = None
    mechanism: str | None = None


#: A unit of work on a pooled session, as given to ``Pkcs11Partition._call``.
SessionCall = Callable[[Lease, CallContext], T]
