"""Anchors of the audit chains outside the database: every signed checkpoint, appended to sinks the
database's writers cannot rewrite — as AWS CloudTrail's signed digest files anchor its logs.

Someone who can write the state database can rewrite records and re-chain them, and delete the
checkpoints that would give them away (or cut off the end of a chain with its checkpoint); they
cannot take back a line already appended to a file they cannot write, or sent to a log host.
``hsmgate audit verify --anchors`` holds the database against these lines
(``domain/audit/verification.py``).

* :class:`FileAnchors`: one JSON line per checkpoint, appended (``O_APPEND``, one ``write`` per
  line, then ``fsync``) to HSMGATE_AUDIT_ANCHOR_FILE (default ``<data-dir>/audit-anchors.jsonl``),
  created 0600. Several processes may append to the same file. Keep it where the database's writers cannot rewrite it: another file system,
  ``chattr +a``, a host that ships it away. A line cut short (the disk full, a crash) stays on a
  line of its own: the next line starts on a new one; :func:`read_anchors` skips such a *torn* line
  (it says so) — its checkpoint is still in the database, only not anchored.
* :class:`SyslogAnchors` (HSMGATE_AUDIT_ANCHOR_SYSLOG): the same line through the standard
  library's ``SysLogHandler`` (facility ``auth``), prefixed ``hsmgate:``.

The line: ``{"type": "hsmgate-audit-anchor", "partition", "seq", "hash", "time", "key_name",
"signature"}`` — the checkpoint as stored, its signature over the canonical checkpoint message by
the partition's attestation key. :func:`read_anchors` reads a file of such lines; text before the
first ``{`` of a line (a syslog prefix) is ignored, so lines collected by syslog read as well.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

ANCHOR_TYPE = "hsmgate-audit-anchor"
#: The fields of an anchor line besides ``type``: a checkpoint row's columns.
ANCHOR_FIELDS = ("partition", "seq", "hash", "time", "key_name", "signature")
#: Default syslog socket; without it, UDP to localhost:514.
SYSLOG_SOCKET = "/dev/log"


class AnchorError(Exception):
    """An anchor sink cannot be opened, or an anchor file cannot be read; the message says which and why."""


class AnchorSink(Protocol):
    """Where signed checkpoints are appended (the audit trail calls :meth:`append` after storing one)."""

    def append(self, checkpoint: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


def anchor_line(checkpoint: Mapping[str, Any]) -> str:
    """The JSON line of a checkpoint (no line break)."""
    return json.dumps({"type": ANCHOR_TYPE, **{name: checkpoint[name] for name in ANCHOR_FIELDS}},
                      ensure_ascii=True, separators=(",", ":"))


class FileAnchors:
    """Appends anchor lines to one file (module text). The file is opened for each line (a
    checkpoint every HSMGATE_AUDIT_CHECKPOINT_INTERVAL records), so a file moved away by log
    rotation is simply created anew; it is opened once at start-up to fail early."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.close(self._open())

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise AnchorError(f"cannot open the audit anchor file {self.path}: {exc.strerror}") from None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise AnchorError(f"the audit anchor file {self.path} is not a regular file")
            if mode & 0o077:
                os.fchmod(fd, 0o600)
        except OSError as exc:
            os.close(fd)
            raise AnchorError(f"cannot make the audit anchor file {self.path} private (chmod 600): "
                              f"{exc.strerror}") from None
        except AnchorError:
            os.close(fd)
            raise
        return fd

    def append(self, checkpoint: Mapping[str, Any]) -> None:
        data = (anchor_line(checkpoint) + "\n").encode("ascii")
        fd = self._open()
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # the line before was cut short (disk full, a crash): never continue it
            written = 0
            while written < len(data):  # one write in practice; a short write is finished, never repeated
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Nothing is kept open."""


def syslog_address(address: str | None) -> str | tuple[str, int]:
    """``None`` → /dev/log when present, else localhost:514 (UDP); ``host:port`` → UDP; else a socket path."""
    if address is None:
        return SYSLOG_SOCKET if os.path.exists(SYSLOG_SOCKET) else ("localhost", 514)
    host, separator, port = address.rpartition(":")
    if separator and host and not address.startswith("/"):
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise AnchorError(f"HSMGATE_AUDIT_ANCHOR_SYSLOG_ADDRESS {address!r}: the port must be 1–65535")
        return host.strip("[]"), int(port)
    return address


class SyslogAnchors:
    """Sends anchor lines to syslog (module text). Delivery is the syslog daemon's business (over
    UDP, best effort); a failed send is reported by the logging module on standard error."""

    def __init__(self, address: str | None) -> None:
        target = syslog_address(address)
        try:
            self._handler = logging.handlers.SysLogHandler(address=target,
                                                           facility=logging.handlers.SysLogHandler.LOG_AUTH)
        except OSError as exc:
            raise AnchorError(f"cannot reach syslog at {target}: {exc.strerror}") from None
        self._handler.setFormatter(logging.Formatter("hsmgate: %(message)s"))

    def append(self, checkpoint: Mapping[str, Any]) -> None:
        # Straight to the handler, past the logging tree: anchor lines go to syslog and nowhere else.
        self._handler.handle(logging.makeLogRecord({"name": "hsmgate.audit.anchor", "levelno": logging.INFO,
                                                    "levelname": "INFO", "msg": anchor_line(checkpoint)}))

    def close(self) -> None:
        self._handler.close()


def read_anchors(path: Path, torn: list[int] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The anchors of a file by partition, in file order; raises AnchorError naming the line. With
    ``torn``, a line cut short — the start of a JSON object that is not closed (an anchor line has
    one ``}``, its last character) — is skipped and its number appended there; any other line that
    is not an anchor is an error still."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise AnchorError(f"cannot read the anchor file {path}: {reason}") from None
    anchors: dict[str, list[dict[str, Any]]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        start = line.find("{")
        try:
            item = json.loads(line[start:]) if start >= 0 else None
        except ValueError:
            item = None
        if not _is_anchor(item):
            if torn is not None and item is None and start >= 0 and not line.rstrip().endswith("}"):
                torn.append(number)
                continue
            raise AnchorError(f"{path} line {number}: not an audit anchor line")
        anchors.setdefault(item["partition"], []).append({name: item[name] for name in ANCHOR_FIELDS})
    return anchors


def _is_anchor(item: object) -> bool:
    if not isinstance(item, dict) or item.get("type") != ANCHOR_TYPE:
        return False
    return isinstance(item.get("seq"), int) and not isinstance(item.get("seq"), bool) and all(
        isinstance(item.get(name), str) for name in ANCHOR_FIELDS if name != "seq")
