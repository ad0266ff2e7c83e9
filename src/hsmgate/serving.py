"""Running the app: one process, or N worker processes behind one listening address.

With ``workers > 1`` on Linux, the supervisor (this process) opens **one listening socket per
worker**, all bound to the same address with ``SO_REUSEPORT``: the kernel then spreads incoming
connections over the workers by a hash of each connection's addresses, so every worker gets its
share. uvicorn's own ``--workers`` shares a single socket among the workers, and whichever worker
wakes first accepts: under keep-alive load (wrk, a connection pool) all connections can land on
one worker and the others idle (seen in bench runs and in the ecosystem notes). The sockets stay
open in the supervisor, so a worker that dies loses no queued connection: its replacement accepts
them. Elsewhere than Linux every worker shares one socket, as with uvicorn.

Each worker builds its own app with :func:`hsmgate.app.create_app` (its own database engine and
soft-token cache); the supervisor migrates the schema and creates the attestation key once before
starting them. Every worker shares the supervisor's serve lock of the data directory and stops when
the supervisor dies (``serve_guard.py``).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from typing import Any

from hsmgate.log_format import configure_logging
from hsmgate.private_files import prepare_data_dir
from hsmgate.serve_guard import ServeLock, die_with_parent
from hsmgate.settings import Settings

log = logging.getLogger("hsmgate.serving")

#: A worker that exits this soon after starting, this many times in a row, stops the supervisor.
_FAST_FAILURE_SECONDS = 10.0
_MAX_FAST_FAILURES = 3


def settle_heap() -> None:
    """Take what start-up built (modules, the app, registries) out of the garbage collector's view.
    Otherwise every full collection walks them all: under load, requests that wait for their audit
    commit survive into the oldest generation and trigger frequent long full passes, which set the
    p99 latency (bench/results/design-measurements.md)."""
    gc.collect()
    gc.freeze()


def reuseport_supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_sockets(host: str, port: int, count: int, *, reuseport: bool) -> list[socket.socket]:
    """``count`` listening sockets on (host, port): one per worker with SO_REUSEPORT, else one shared."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count if reuseport else 1):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuseport:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            if port == 0:  # the first socket picked a port: the others join it
                port = sock.getsockname()[1]
            sock.listen(2048)
            sock.set_inheritable(True)
            sockets.append(sock)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets if reuseport else sockets * count


def prepare(settings: Settings) -> None:
    """What must happen once before workers start, and fail here with one line rather than in N
    workers: settings checks, schema migration, backends opened, attestation keys created. Builds
    the app once and runs its start-up and shut-down, so nothing stays open in the supervisor."""
    import asyncio

    from hsmgate.app import create_app

    app = create_app(settings)

    async def cycle() -> None:
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(cycle())


def _worker(settings: Settings, sock: socket.socket, uvicorn_options: dict[str, Any], index: int,
            lock: ServeLock, supervisor_pid: int) -> None:
    """Entry point of one worker process (spawned): its own app on its own (or the shared) socket.
    ``lock``: the supervisor's serve lock, held by this process too for as long as it runs."""
    die_with_parent(supervisor_pid)
    import uvicorn

    from hsmgate.app import create_app

    configure_logging(settings.log_level, settings.log_format, worker=index)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; it sends SIGTERM
    app = create_app(settings)
    settle_heap()
    config = uvicorn.Config(app, **uvicorn_options)
    uvicorn.Server(config).run(sockets=[sock])
    os.close(lock.fd)  # stopped: let go of the data directory


class Supervisor:
    """Starts N workers, restarts one that dies, stops them all on SIGTERM / SIGINT."""

    def __init__(self, settings: Settings, uvicorn_options: dict[str, Any], workers: int, lock: ServeLock) -> None:
        self.settings = settings
        self.lock = lock
        self.options = {k: v for k, v in uvicorn_options.items() if k not in ("host", "port", "workers")}
        self.count = workers
        self.reuseport = reuseport_supported()
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self.sockets: list[socket.socket] = []
        self.processes: list[multiprocessing.process.BaseProcess | None] = []

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=_worker, name=f"hsmgate-worker-{index}",
            args=(self.settings, self.sockets[index], self.options, index, self.lock, os.getpid()), daemon=False,
        )
        process.start()
        self.processes[index] = process
        self._started[index] = time.monotonic()

    def _stop(self, *_args: object) -> None:
        self._stopping = True

    def run(self) -> int:
        self.sockets = bind_sockets(self.settings.host, self.settings.port, self.count, reuseport=self.reuseport)
        self.processes = [None] * self.count
        self._started = [0.0] * self.count
        failures = 0
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.count):
                self._start(index)
            while not self._stopping:
                time.sleep(0.2)
                for index, process in enumerate(self.processes):
                    if process is None or process.is_alive() or self._stopping:
                        continue
                    lived = time.monotonic() - self._started[index]
                    failures = failures + 1 if lived < _FAST_FAILURE_SECONDS else 0
                    log.error("worker %d (pid %s) exited with %s after %.1f s%s", index, process.pid,
                              process.exitcode, lived, "; restarting" if failures < _MAX_FAST_FAILURES else "")
                    if failures >= _MAX_FAST_FAILURES:
                        return 1
                    self._start(index)
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._shutdown()

    def _shutdown(self) -> None:
        alive = [p for p in self.processes if p is not None and p.is_alive()]
        for process in alive:
            if process.pid:
                os.kill(process.pid, signal.SIGTERM)  # uvicorn: finish in-flight requests, then exit
        deadline = time.monotonic() + 15
        for process in alive:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
        for sock in {id(s): s for s in self.sockets}.values():
            sock.close()


def serve(settings: Settings, uvicorn_options: dict[str, Any]) -> int:
    """Serve until stopped; returns the exit status. ``uvicorn_options`` are ``uvicorn.Config``
    keyword arguments (host, port, log level, TLS files…), the same for every worker."""
    import uvicorn

    prepare_data_dir(settings.data_dir)
    lock = ServeLock.acquire(settings.data_dir)  # held until this process exits
    if settings.workers <= 1:
        from hsmgate.app import create_app

        app = create_app(settings)
        settle_heap()
        uvicorn.run(app, **uvicorn_options)
        return 0
    prepare(settings)
    return Supervisor(settings, uvicorn_options, settings.workers, lock).run()
