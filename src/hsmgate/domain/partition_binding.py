"""A partition's state belongs to one token.

The state database keeps, per partition, what only makes sense together with its keys: key
metadata and passwords, SKA policies and requests, the audit chain and its checkpoints signed by
the partition's attestation key. Served against another token — a PKCS#11 token swapped for a fresh
one, the soft token under another master key, the soft token where a PKCS#11 token was — that state
would describe keys that are not there, and new keys would mix with it. So the first start of a
partition records its token (``store/partition_bindings.py``) and every later start compares:

* the backend (``soft`` or ``pkcs11``);
* PKCS#11: the token's serial number and label;
* soft token: a fingerprint of the master key (HMAC-SHA-256 under the key, never the key).

A difference refuses the start with one line naming both tokens. ``hsmgate partition remove``
forgets a database partition's binding with the partition.
"""

from __future__ import annotations

from datetime import datetime

from hsmgate.hsm.base import TokenIdentity
from hsmgate.store.partition_bindings import BindingRepository, BoundToken


class BindingMismatch(Exception):
    """The partition's state belongs to another backend or token; the message says which."""


def describe(token: TokenIdentity | BoundToken) -> str:
    """A token as an operator can recognise it (a fingerprint shortened to 16 hex digits)."""
    if token.backend == "soft":
        return f"the soft token under the master key with fingerprint {(token.key_fingerprint or '?')[:16]}"
    if token.backend == "pkcs11":
        return f"PKCS#11 token '{token.token_label}' (serial {token.token_serial})"
    return f"the {token.backend} backend"


def _same(bound: BoundToken, current: TokenIdentity) -> bool:
    if bound.backend != current.backend:
        return False
    if bound.backend == "soft":
        return bound.key_fingerprint == current.key_fingerprint
    if bound.backend == "pkcs11":  # the serial identifies a token; a re-labelled token is another one too
        return (bound.token_serial, bound.token_label) == (current.token_serial, current.token_label)
    return True


def _fix(bound: BoundToken) -> str:
    if bound.backend == "soft":
        return "set HSMGATE_MASTER_KEY (or <data-dir>/master.key) back to the key it was created with"
    if bound.backend == "pkcs11":
        return (f"set HSMGATE_BACKEND=pkcs11 and HSMGATE_PKCS11_TOKEN_LABEL (or _SLOT) to token "
                f"'{bound.token_label}' again")
    return f"set HSMGATE_BACKEND={bound.backend} again"


class PartitionBindings:
    """Checks and records which token each partition's state belongs to."""

    def __init__(self, repository: BindingRepository) -> None:
        self._repository = repository

    def check(self, partition: str, current: TokenIdentity) -> bool:
        """True when ``partition`` is bound to ``current``, False when it is not bound yet; raises
        :class:`BindingMismatch` when it is bound to another token."""
        bound = self._repository.get(partition)
        if bound is None:
            return False
        if not _same(bound, current):
            raise BindingMismatch(
                f"partition '{partition}' of this state database belongs to {describe(bound)}, not to "
                f"{describe(current)}: {_fix(bound)}, or give this token its own data directory "
                "(--data-dir, HSMGATE_DATABASE_URL) or partition name")
        return True

    def bind(self, partition: str, current: TokenIdentity, *, when: datetime) -> None:
        """Record ``current`` as the token of ``partition`` (a start of the same partition racing
        this one may have recorded it first: then it is checked like any later start)."""
        token = BoundToken(current.backend, current.token_label, current.token_serial, current.key_fingerprint)
        if not self._repository.add(partition, token, when=when):
            self.check(partition, current)

    def forget(self, partition: str) -> None:
        self._repository.remove(partition)
