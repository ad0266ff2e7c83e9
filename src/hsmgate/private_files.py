"""Files at rest: the data directory is 0700 and every file hsmgate writes there is 0600.

The data directory holds the state database (key metadata, sealed soft-token keys, SKA requests,
the audit log) and, unless HSMGATE_MASTER_KEY is set, ``master.key``. Other local users have no
business reading any of it. So:

* :func:`restrict_umask` sets the process umask to 0o077 (``hsmgate serve`` and ``create_app`` call
  it first): whatever is created later — SQLite's ``-wal`` / ``-shm`` / journal files, lock files,
  files of the PKCS#11 library — is private to the user hsmgate runs as.
* :func:`prepare_data_dir` creates the directory with mode 0700. An existing directory open to
  group or others (hsmgate before this change created it 0755) is **tightened** to 0700 when it
  is plainly hsmgate's — owned by this user and holding nothing but hsmgate's files — with a log
  line; otherwise it is **refused** with one line (ConfigError): ``chmod 700`` it, or point
  HSMGATE_DATA_DIR at a directory of hsmgate's own. hsmgate never changes the mode of a directory
  it cannot tell is its own (``/tmp``, ``/var/lib``, a home directory …).
* The SQLite database is created 0600 and an existing one tightened to 0600, with its companions
  (``store/database.py``; SQLite gives its ``-wal`` and ``-shm`` files the database file's mode).
* ``master.key`` is created 0600 and *refused* when group or others can read it
  (``Settings.load_master_key``): a key that was exposed needs a decision, not a chmod.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from hsmgate.settings import ConfigError

log = logging.getLogger("hsmgate")

UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600

#: Names of the files hsmgate keeps in its data directory (``state.db`` and its companions:
#: ``-wal``, ``-shm``, ``-journal``, ``.migrate.lock``, ``.audit.lock``).
OWN_NAMES = ("master.key", "serve.lock", "audit-anchors.jsonl")
OWN_PREFIX = "state.db"


def restrict_umask() -> None:
    """Files and directories this process creates from now on: no access for group and others."""
    os.umask(UMASK)


def is_own_name(name: str) -> bool:
    return name in OWN_NAMES or name.startswith(OWN_PREFIX)


def prepare_data_dir(path: Path) -> None:
    """Set the umask (:func:`restrict_umask`), then create ``path`` 0700 or check an existing one
    (tightened to 0700 when it is plainly hsmgate's, else ConfigError; see the module doc)."""
    restrict_umask()
    try:
        path.mkdir(parents=True, mode=DIR_MODE)
        os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask; be explicit
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {path}: {exc.strerror or exc}") from None
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"the data directory {path} is not a directory")
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return
    try:
        foreign = sorted(entry.name for entry in path.iterdir() if not is_own_name(entry.name))
    except OSError as exc:
        raise ConfigError(f"cannot read the data directory {path}: {exc.strerror or exc}") from None
    if info.st_uid != os.geteuid() or foreign:
        why = f"it holds files that are not hsmgate's ({', '.join(foreign[:3])})" if foreign else \
            "it belongs to another user"
        raise ConfigError(f"the data directory {path} is open to group or others (mode {mode:04o}) and {why}: "
                          "chmod 700 it, or set HSMGATE_DATA_DIR to a directory of hsmgate's own")
    os.chmod(path, DIR_MODE)
    log.warning("data directory %s was mode %04o; now 0700 (group and others have no access)", path, mode)

