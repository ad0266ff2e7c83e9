"""What a partition remembers about its keys between calls: the object handle and the description.

A :class:`KeyEntry` holds a key's object handle (valid in every session of this process: the handle of a
token object belongs to the application, not to the session that found it) and the :class:`KeyInfo` read
from the token. :class:`KeyCache` keeps at most ``size`` of them, least recently used out first.

An entry is trusted as it is only while the *stamp* it was stored under is current: the state database's
key generation token (``store/key_generation.py``; it moves whenever any hsmgate process creates, deletes
or changes a key), the module's re-initialisation count and the session pool's epoch. The partition reads
the stamp *before* it looks a key up, so an entry is never newer than the stamp it carries. When only the
generation token moved, the partition re-checks the entry with one C_GetAttributeValue (the handle still
names an object with the same CKA_LABEL and CKA_ID) instead of a search (``Pkcs11Partition._entry``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from hsmgate.hsm.base import KeyInfo

#: Where a partition learns whether key state changed elsewhere: the key generation's ``current()`` (a token
#: compared with ``==``; None: unknown, trust no cache).
GenerationSource = Callable[[], object | None]
#: (generation token, module re-initialisation count, session pool epoch)
Stamp = tuple[object, int, int]


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key as last read from the token."""

    handle: int  # CK_OBJECT_HANDLE of the private, secret or stand-alone public key object
    info: KeyInfo
    stamp: Stamp


class KeyCache:
    """An LRU map label -> :class:`KeyEntry` of at most ``size`` entries (0: remember nothing).

    Reads take no lock (a dict lookup and ``move_to_end`` are atomic under the GIL); inserts and removals
    take a short one, never held during a call to the token."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("the key cache size must not be negative")
        self.size = size
        self._entries: OrderedDict[str, KeyEntry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, label: str) -> KeyEntry | None:
        """The entry of ``label``, whatever its stamp (the caller judges it), marked as just used."""
        entry = self._entries.get(label)
        if entry is None:
            return None
        try:
            self._entries.move_to_end(label)
        except KeyError:  # forgotten meanwhile by another thread
            pass
        return entry

    def put(self, label: str, entry: KeyEntry) -> None:
        """Remember ``entry``; the least recently used entries go when the cache is full."""
        if not self.size:
            return
        with self._lock:
            self._entries[label] = entry
            self._entries.move_to_end(label)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, label: str, entry: KeyEntry | None = None) -> None:
        """Drop ``label`` (only if it still is ``entry``, when given)."""
        with self._lock:
            if entry is None or self._entries.get(label) is entry:
                self._entries.pop(label, None)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
