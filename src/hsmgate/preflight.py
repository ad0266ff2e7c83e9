"""What ``hsmgate serve`` checks before it writes anything: the listening address is free and the data
directory is usable. Each failure is a :class:`~hsmgate.settings.ConfigError` whose one-line message
names the problem and the fix (the CLI prints it and exits with status 2).

The address is checked first: a second server started on a busy port must not migrate the schema,
create a master key or sign an audit checkpoint in a database it will never serve (uvicorn would
only find the port taken after the application had started up, and shut it down again).
"""

from __future__ import annotations

import errno
import os
import pwd
import socket
import tempfile
from pathlib import Path

from hsmgate import private_files
from hsmgate.settings import ConfigError


def check_port_free(host: str, port: int) -> None:
    """Bind ``(host, port)`` the way the server will (``SO_REUSEADDR``, no ``SO_REUSEPORT``) and let
    it go again; ConfigError when it is taken or not an address of this machine.

    Between this check and the server's own bind another process could take the port; then the
    server fails as before, only later. The check is for the common mistake, not a lock."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: the host name does not resolve ({exc.strerror}): "
                              "set --host (HSMGATE_HOST) to an address of this machine") from None
        except OSError as exc:
            raise ConfigError(_bind_problem(host, port, exc)) from None


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use (another hsmgate or another server listens there): "
                "stop that process, or choose a free port with --port (HSMGATE_PORT)")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot listen on {where}: {host} is not an address of this machine: "
                "set --host (HSMGATE_HOST) to one of its addresses, or 0.0.0.0 for all")
    if exc.errno == errno.EACCES:
        return (f"cannot listen on {where}: ports below 1024 need privileges: choose a port of 1024 or "
                "above with --port (HSMGATE_PORT) and forward to it")
    return f"cannot listen on {where}: {exc.strerror or exc}: check --host and --port (HSMGATE_HOST, HSMGATE_PORT)"


def prepare_data_dir(path: Path) -> None:
    """The data directory, created 0700 when missing and an existing one checked for its mode
    (:func:`hsmgate.private_files.prepare_data_dir`, which also sets the umask); ConfigError when
    ``path`` is not a directory this user can write to (the master key, the SQLite database and
    lock files live there)."""
    fix = "choose another with --data-dir (HSMGATE_DATA_DIR)"
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"the data directory {path} is not a directory: {fix}; hsmgate creates a missing one")
        try:  # a real write: permission bits do not tell for root, ACLs or a read-only file system
            fd, probe = tempfile.mkstemp(prefix=".hsmgate-write-test-", dir=path)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(f"the data directory {path} is not writable by {_user()} ({exc.strerror}): give "
                              f"that user write access (chown or chmod u+rwx), or {fix}") from None
    private_files.prepare_data_dir(path)


def _user() -> str:
    try:
        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:
        return f"uid {os.geteuid()}"
