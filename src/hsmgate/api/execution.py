"""Where a route runs a backend operation: inline on the event loop, or in the threadpool; and how
it waits for the operation's audit records.

A hop into Starlette's threadpool costs a large share of a fast signature and buys nothing for
the soft token, whose short operations hold the GIL anyway (figures:
``bench/results/design-measurements.md``). Key operations therefore run through
:func:`run_operation`, which runs the call inline when
``app.state.inline_operations`` says every step of an operation is short and never waits on
the network (soft token, SQLite state; a PKCS#11 token with HSMGATE_PKCS11_INLINE), and in the
threadpool otherwise (a PKCS#11 HSM, a PostgreSQL round trip).

Audit. The operation's outcome records are only submitted while it runs
(:func:`hsmgate.domain.audit.recording.deferred_records`); :func:`run_operation` then waits for their commit
without holding a thread, and only then returns the result (or raises 503 / 703 if a record
cannot be written and fail-closed is on). The commit is a group commit. On SQLite, the records of
every request that reached this point within :data:`GROUP_WINDOW` (0.5 ms) are written by one
transaction on the loop (``call_later``: a group's fixed cost — lock, chain head, commit — shared
by more requests: +10–17 % single signatures a second with the audit on, bench/results/design-measurements.md); on a network database the repository's writer
thread writes whatever is queued, one transaction after the other. A thread writing while the
event loop is busy waits for the GIL after each database call, up to the switch interval, which
makes an SQLite commit many times slower than on the loop itself, hence inline there — all but
its fsync, which a thread of its own does while the loop goes on (``store/wal_sync.py``: the
records are answered once on disk); on PostgreSQL a group costs two such waits (pipeline mode,
``store/audit.py``).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from hsmgate.domain.audit.recording import PendingRecords, deferred_records
from hsmgate.settings import Settings

T = TypeVar("T")


def inline_operations(settings: Settings, database_dialect: str) -> bool:
    """True when a key operation never waits on the network: the soft token on SQLite, or a PKCS#11
    token declared fast and local (HSMGATE_PKCS11_INLINE) on SQLite."""
    local_keys = settings.backend == "soft" or (settings.backend == "pkcs11" and settings.pkcs11_inline)
    return local_keys and database_dialect == "sqlite"


async def run_operation(request: Request, call: Callable[[], T], *, long: bool = False) -> T:
    """``call()``, its result returned only once its audit records are committed. ``long``: the
    call may take seconds (a whole file), so it runs in the threadpool whatever the backend."""
    inline = getattr(request.app.state, "inline_operations", False) and not long
    with deferred_records() as pending:
        try:
            return call() if inline else await run_in_threadpool(call)
        finally:
            if pending:
                await committed(pending)


async def committed(pending: PendingRecords) -> None:
    """Have ``pending`` written (SQLite: on the event loop within :data:`GROUP_WINDOW`; a network
    database: by the writer thread), wait for the commit without blocking the loop, raise AuditUnavailable if
    fail-closed records were not written."""
    loop = asyncio.get_running_loop()
    if pending.local:
        _write_soon_on(loop, pending)
    else:
        pending.write_soon()
    loop_thread = threading.get_ident()
    for future in pending.futures:
        if not future.done():
            await _settled(future, loop, loop_thread)
    pending.check()


#: Seconds an SQLite group stays open for the records of requests still running on the loop: a
#: group commit's fixed cost (lock, head, commit) is then shared by more requests.
GROUP_WINDOW = 0.0005
_waiting: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[PendingRecords]] = weakref.WeakKeyDictionary()


def _write_soon_on(loop: asyncio.AbstractEventLoop, pending: PendingRecords) -> None:
    """Have ``pending`` written on ``loop`` within :data:`GROUP_WINDOW`, with every other operation's
    records submitted meanwhile (the first write of a repository writes its whole queue; the others
    find it empty)."""
    waiting = _waiting.get(loop)
    if waiting is not None:
        waiting.append(pending)
        return
    waiting = _waiting[loop] = [pending]

    def write() -> None:
        del _waiting[loop]
        for each in waiting:  # each on its own, as before: one failing does not keep the others waiting
            loop.call_soon(each.write)

    loop.call_later(GROUP_WINDOW, write)


def _settled(future: Future[Any], loop: asyncio.AbstractEventLoop, loop_thread: int) -> asyncio.Future[None]:
    """An asyncio future that resolves once ``future`` is settled. Like ``asyncio.wrap_future``,
    but settled directly when the loop itself wrote the records (inline), and otherwise woken in
    batches: one ``call_soon_threadsafe`` (a write to the loop's self-pipe, during which the writer
    thread gives up the GIL) per batch of records instead of one per record."""
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: Future[Any]) -> None:
        if threading.get_ident() == loop_thread:
            _resolve(waiter)
        else:
            _wakeups(loop).add(waiter)

    future.add_done_callback(wake)
    return waiter


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # a cancelled request no longer waits
        waiter.set_result(None)


class _Wakeups:
    """Waiters of one event loop settled by another thread, resolved together on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._waiters: list[asyncio.Future[None]] = []

    def add(self, waiter: asyncio.Future[None]) -> None:
        with self._lock:
            self._waiters.append(waiter)
            first = len(self._waiters) == 1
        if first:
            self._loop.call_soon_threadsafe(self._resolve_all)

    def _resolve_all(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            _resolve(waiter)


_wakeups_of: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Wakeups] = weakref.WeakKeyDictionary()
_wakeups_lock = threading.Lock()


def _wakeups(loop: asyncio.AbstractEventLoop) -> _Wakeups:
    with _wakeups_lock:
        wakeups = _wakeups_of.get(loop)
        if wakeups is None:
            wakeups = _wakeups_of[loop] = _Wakeups(loop)
        return wakeups
