"""One ``hsmgate serve`` per data directory, and no worker outliving its supervisor.

With ``--workers N`` every worker listens on its own SO_REUSEPORT socket. A worker left running
after its supervisor died (``kill -9``, an OOM kill) keeps serving with the settings it was started
with — API keys revoked since, say — and a new ``hsmgate serve`` on the same port would *share* the
port with it: the kernel hands some connections to the orphan. Two defences:

* **The serve lock** (:class:`ServeLock`): ``<data-dir>/serve.lock``, an exclusive ``flock`` taken
  by ``hsmgate serve`` before anything else and never released while it runs. The supervisor's
  open file description is handed to every worker (``multiprocessing.reduction.DupFd``), and a
  flock belongs to the open file description: the lock stays held as long as *any* of them
  lives. A second ``hsmgate serve`` on the same data directory — while the first, or an orphaned
  worker of it, still runs — fails with one line (exit 2).
* **Workers die with their supervisor** (:func:`die_with_parent`): on Linux
  ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, so the kernel signals a worker the moment its supervisor
  dies; everywhere a thread that checks ``getppid()`` every second as a fallback. SIGTERM lets
  uvicorn finish the requests in flight (and their audit records); a worker still alive
  :data:`GRACE_SECONDS` after its parent died exits hard.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from multiprocessing import reduction
from pathlib import Path
from typing import Protocol

from hsmgate.settings import ConfigError

log = logging.getLogger("hsmgate.serving")

LOCK_NAME = "serve.lock"
#: ``prctl`` option of <linux/prctl.h>.
PR_SET_PDEATHSIG = 1
#: How often the fallback thread looks at the parent, and how long a worker may take to stop
#: after its parent died before it exits hard.
CHECK_SECONDS = 1.0
GRACE_SECONDS = 10.0


class DataDirInUse(ConfigError):
    """Another ``hsmgate serve`` (or a worker of one) holds the data directory's serve lock."""


class ServeLock:
    """The exclusive flock on ``<data-dir>/serve.lock`` (see the module doc). Picklable for a
    spawned worker: the worker receives a descriptor of the *same* open file, so it holds the
    lock too. Kept open for the life of the process that holds it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> ServeLock:
        """Take the lock (the data directory must exist); DataDirInUse when it is held."""
        path = data_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot open {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise DataDirInUse(f"the data directory {data_dir} is in use by another hsmgate serve (started as pid "
                               f"{holder}) or by worker processes it left running; stop them first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return cls(fd)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return _inherit, (reduction.DupFd(self.fd),)


class _Duplicate(Protocol):
    """What ``multiprocessing.reduction.DupFd`` returns: the descriptor, in the receiving process."""

    def detach(self) -> int: ...


def _inherit(duplicate: _Duplicate) -> ServeLock:
    return ServeLock(duplicate.detach())


def die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process stop when ``parent_pid`` is no longer its parent: the kernel's
    parent-death signal on Linux, and a checking thread everywhere. Exits at once when the parent
    is already gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
        except (OSError, AttributeError) as exc:
            log.warning("prctl(PR_SET_PDEATHSIG) is not available: %s", exc)
    if os.getppid() != parent_pid:  # died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="hsmgate-parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(CHECK_SECONDS)
    log.warning("the supervisor (pid %d) is gone; stopping", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn: finish what is in flight, then exit
    time.sleep(GRACE_SECONDS)
    os._exit(1)
