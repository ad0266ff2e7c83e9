"""The time source of the SKA workflow, injectable so tests can move time (timelocks, timeouts).

Every time the SKA code reads — request creation (the HSM timestamp), timelock and timeout
evaluation, the approvers' timestamp window, the scheduler's "due" query — comes from one
:class:`Clock`. Production uses :class:`SystemClock`; tests hand ``create_app`` a
:class:`ManualClock` and move it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock for tests: runs with the machine's clock from an offset, or stands still when frozen.

    ``advance(seconds)`` moves it forward, ``set(moment)`` jumps (and freezes at that moment when
    ``freeze`` is true). Thread-safe: the scheduler thread and the request threads read it.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._frozen_at: datetime | None = None
        if start is not None:
            self.set(start, freeze=frozen)
        elif frozen:
            self._frozen_at = datetime.now(UTC)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def set(self, moment: datetime, *, freeze: bool = False) -> None:
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        with self._lock:
            if freeze or self._frozen_at is not None:
                self._frozen_at = moment
            else:
                self._offset = moment - datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += timedelta(seconds=seconds)
            else:
                self._offset += timedelta(seconds=seconds)
