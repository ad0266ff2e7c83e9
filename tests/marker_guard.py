"""Keeps the resource markers honest: a test that loads a PKCS#11 module (SoftHSM2), connects to
PostgreSQL or starts a process fails unless it carries the matching marker.

``make test-fast`` deselects ``pkcs11``, ``postgres``, ``subprocess`` and ``slow`` tests; a test that
needs one of them without saying so would make the fast lane slow, or fail where the resource is
missing. The guard wraps the entry points once per session:

- ``pkcs11.lib`` (loading a PKCS#11 module) and running ``softhsm2-util`` or ``pkcs11-tool`` → ``pkcs11``;
- ``psycopg.connect`` (SQLAlchemy's PostgreSQL dialect and ``tests/postgres.py`` go through it), and
  ``pg_ctlcluster`` → ``postgres``;
- any other ``subprocess.Popen`` and ``multiprocessing`` process start → ``subprocess``.

What a test's setup and call do is charged to that test, in any thread (a live server's worker
threads included); teardown is not, because a module's fixtures are torn down in the teardown of
whichever test happens to run last. SoftHSM2 is set up once per session, so a test is also charged
with ``pkcs11`` when it asks for one of the SoftHSM2 fixtures (``tests/softhsm_fixtures.py``),
whether or not it is the one that made the token. The guard is a plugin of ``tests/conftest.py``.
"""

from __future__ import annotations

import multiprocessing.process
import os
import subprocess
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any

import pkcs11
import psycopg
import pytest

#: Programs whose start says more than "a process": token set-up is SoftHSM2, cluster start-up PostgreSQL.
PROGRAM_MARKERS: dict[str, tuple[str, ...]] = {
    "softhsm2-util": ("pkcs11",),
    "pkcs11-tool": ("pkcs11", "subprocess"),
    "pg_ctlcluster": ("postgres",),
}

#: Fixtures of tests/softhsm_fixtures.py: asking for any of them needs SoftHSM2.
SOFTHSM_FIXTURES = frozenset({"softhsm_dir", "softhsm_token", "softhsm_factory"})

_charged: pytest.Item | None = None
_used: dict[str, dict[str, str]] = {}  # node id -> marker -> what used it first


def _use(marker: str, what: str) -> None:
    item = _charged
    if item is not None:
        thread = threading.current_thread()
        where = "" if thread is threading.main_thread() else f" (in thread {thread.name})"
        _used.setdefault(item.nodeid, {}).setdefault(marker, what + where)


def _program(args: Any) -> str:
    if isinstance(args, str | bytes | os.PathLike):
        first = os.fsdecode(args).split()[0] if os.fsdecode(args).strip() else ""
    elif isinstance(args, Sequence) and args:
        first = os.fsdecode(args[0])
    else:
        first = ""
    return os.path.basename(first)


def _install() -> None:
    if getattr(subprocess.Popen, "_marker_guard", False):
        return
    popen_init = subprocess.Popen.__init__

    def guarded_popen_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        program = _program(args)
        # ldconfig: ctypes.util.find_library, run once when a library binding is first imported
        # (pycryptodome's GMP loader): the library's doing, not the test's
        for marker in () if program == "ldconfig" else PROGRAM_MARKERS.get(program, ("subprocess",)):
            _use(marker, f"runs {program}")
        popen_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = guarded_popen_init  # type: ignore[method-assign]
    subprocess.Popen._marker_guard = True  # type: ignore[attr-defined]

    process_start = multiprocessing.process.BaseProcess.start

    def guarded_start(self: multiprocessing.process.BaseProcess) -> None:
        _use("subprocess", f"starts a multiprocessing process ({self.name})")
        process_start(self)

    multiprocessing.process.BaseProcess.start = guarded_start  # type: ignore[method-assign]

    library = pkcs11.lib

    def guarded_library(path: str) -> Any:
        _use("pkcs11", f"loads the PKCS#11 module {path}")
        return library(path)

    pkcs11.lib = guarded_library  # type: ignore[assignment,misc]

    connect: Callable[..., psycopg.Connection[Any]] = psycopg.connect

    def guarded_connect(*args: Any, **kwargs: Any) -> psycopg.Connection[Any]:
        _use("postgres", "connects to PostgreSQL")
        return connect(*args, **kwargs)

    psycopg.connect = guarded_connect  # type: ignore[assignment]


def pytest_configure(config: pytest.Config) -> None:
    _install()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = SOFTHSM_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if fixtures:
            _used.setdefault(item.nodeid, {})["pkcs11"] = f"asks for the SoftHSM2 fixture {min(fixtures)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    global _charged
    _charged = item
    try:
        return (yield)
    finally:
        _charged = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    global _charged
    _charged = item
    try:
        result = yield
    finally:
        _charged = None
    missing = {marker: what for marker, what in _used.get(item.nodeid, {}).items()
               if item.get_closest_marker(marker) is None}
    if missing:
        reasons = "; ".join(f"{what} without @pytest.mark.{marker}"
                            for marker, what in sorted(missing.items()))
        pytest.fail(f"unmarked resource use (see tests/marker_guard.py): {reasons}", pytrace=False)
    return result
