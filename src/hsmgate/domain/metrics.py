"""What the domain reports for monitoring: the key-use gate (``domain/key_use.py``) counts every
operation's outcome where it records it, by operation, key family, algorithm and outcome.

The domain only knows this protocol; the Prometheus implementation is ``hsmgate/metrics.py`` and
``bootstrap.py`` hands it to each partition's gate. Label values come from closed sets — the
gate's operation names, the algorithm registries (``domain/algorithms.py`` :data:`KEY_FAMILIES`),
``ok`` / ``error`` — never from a key label or other caller text, so the number of series stays
bounded whatever callers send.
"""

from __future__ import annotations

from typing import Protocol


class OperationCounter(Protocol):
    """Counts key operations; called on the hot path, so an implementation must be cheap
    (no I/O, no lock held for long)."""

    def count(self, operation: str, key_type: str, algorithm: str, outcome: str, n: int = 1) -> None:
        """``n`` operations of ``operation`` with a ``key_type`` key and ``algorithm`` ended in
        ``outcome`` (``ok`` or ``error``)."""


class NoOperationCounter:
    """Counts nothing (command-line tools, tests)."""

    def count(self, operation: str, key_type: str, algorithm: str, outcome: str, n: int = 1) -> None:
        return None
