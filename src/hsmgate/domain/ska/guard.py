"""Enforcement of SKA policies on every use of a key, as the HSM does it for Primus SKA keys.

The TSB hands an SKA operation to the HSM together with the collected approvals and the HSM refuses
it without them. hsmgate's backends (a PKCS#11 token, the soft token) know nothing of policies, so
this module plays the HSM's part: the key-use gate (``domain/key_use.py``) calls :func:`check_use`
on every private-key use (sign, decrypt, unwrap, decapsulate, certificates), which reads the key's
*guard bits*:

* ``BLOCKED``: the key is blocked — every use is refused (614 ``res.error.operation.forbidden.for.key``)
  until it is unblocked, whatever approvals come with it.
* ``USE_NEEDS_APPROVAL``: ``ruleUse`` is not always fulfilled — a use is refused (401
  ``res.error.missing.approval``) unless its ``signedApprovals`` were verified or it runs inside
  :func:`authorized` for this key, which only the request executor opens (approvals verified and
  evaluated).

SKA keys are never extractable: exporting or wrapping any key that has a policy is refused (614).
The guard bits (``key_metadata.policy_guard``) are read on every use, from the metadata repository's
cache while the database's key generation is unchanged (``store/key_generation.py``), so a block made
by one hsmgate process holds in every other process sharing the database: at once on SQLite, once
the change notification has arrived on PostgreSQL (typically well under a millisecond).

Every caller operation reaches the backend through the gate, so every one passes this check.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from hsmgate.domain import errors
from hsmgate.domain.ska.policy import EvaluationStatus, Policy, evaluate

BLOCKED = 1
USE_NEEDS_APPROVAL = 2
MISSING_APPROVAL = 401

_AUTHORIZED: ContextVar[frozenset[tuple[str, str]]] = ContextVar("hsmgate_ska_authorized", default=frozenset())


@contextmanager
def authorized(partition: str, label: str) -> Iterator[None]:
    """Within this block, uses of key ``label`` of ``partition`` count as approved (not unblocked)."""
    token = _AUTHORIZED.set(_AUTHORIZED.get() | {(partition, label)})
    try:
        yield
    finally:
        _AUTHORIZED.reset(token)


def policy_json(policy: Policy) -> str:
    """The stored form of a policy: the compact PolicyDto JSON (keyStatus included)."""
    return json.dumps(policy.to_wire(), separators=(",", ":"), sort_keys=True)


@functools.lru_cache(maxsize=1024)
def load_policy(text: str) -> Policy:
    """A stored policy (validated again, cached by its text; the creation-only rules of
    :meth:`Policy.from_wire` do not apply to it)."""
    return Policy.from_wire(json.loads(text), stored=True)


def always_fulfilled(policy: Policy, rule_name: str = "rule_use") -> bool:
    """True when the rule needs neither approvals nor waiting (None, no tokens, or a token
    without groups and without timelock)."""
    rule = getattr(policy, rule_name)
    moment = datetime.now(UTC)
    return evaluate(rule, frozenset(), frozenset(), moment, moment).status is EvaluationStatus.FULFILLED


def guard_bits(policy: Policy) -> int:
    bits = BLOCKED if policy.blocked else 0
    if not always_fulfilled(policy):
        bits |= USE_NEEDS_APPROVAL
    return bits


def check_use(partition: str, label: str, guard: int | None, *, approved: bool = False) -> None:
    """Raise the TSB error that refuses a use of the key, if any. ``approved``: ``signedApprovals``
    of this use were verified (a use inside :func:`authorized` counts as approved too)."""
    if guard is None:
        return
    if guard & BLOCKED:
        raise errors.OperationForbiddenForKey(f"key '{label}' is blocked; unblock it first (/v1/unblock)")
    if guard & USE_NEEDS_APPROVAL and not approved and (partition, label) not in _AUTHORIZED.get():
        raise errors.TsbError(
            f"key '{label}' has a policy: its use needs approvals (the asynchronous endpoint, or "
            "'signedApprovals' on the synchronous one)", code=MISSING_APPROVAL)
