"""Hierarchical deterministic derivation: the vocabulary every layer shares (no key material here).

A derivation *master* is a key made from a seed (BIP-32 / SLIP-0010 master node); a *child* is
named ``<master>/<path>``, the path written as the TSB writes it: indexes separated by ``/``, a
hardened index marked with an apostrophe, no leading ``m/`` (``wallet/44'/0'/0'/0/5``).

:class:`DerivationPath` parses such a path strictly — see :meth:`DerivationPath.parse` — so one
child has exactly one name (``0044'`` or ``44h`` are refused, not aliased). The derivation itself
is done by the backend that holds the master (``softderive.py`` for the soft token).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: Index offset of a hardened child (BIP-32: ``i >= 2^31``).
HARDENED = 0x8000_0000
#: Deepest path accepted. BIP-32 serialises the depth in one byte (255); custody paths are at most
#: 5–6 deep (BIP-44/49/84/86), so a longer path is almost certainly a mistake, and each level costs a
#: derivation step on every temporary use.
MAX_DEPTH = 32
#: Seed lengths in bits that a master may be made from (BIP-32: 128 to 512 bits; the TSB: the same,
#: 256 advised).
SEED_BITS = (128, 512)


class DerivationScheme(enum.StrEnum):
    """How children are derived from a master node.

    ``SLIP10``: SLIP-0010 on secp256k1, NIST P-256 or Ed25519. On secp256k1 it is BIP-32 (the two
    differ only in the ~2^-127-probability case of an invalid intermediate key, where SLIP-0010
    retries and BIP-32 skips the index). On Ed25519 only hardened children exist.
    """

    SLIP10 = "SLIP-0010"


@dataclass(frozen=True, slots=True)
class DerivationPath:
    """A parsed derivation path: child indexes, hardened ones with :data:`HARDENED` added."""

    indexes: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> DerivationPath:
        """Parse ``44'/0'/0'/0/5``. Raises ValueError (with a sentence naming the fault) for an
        empty path or step, a leading ``m`` or ``/``, anything but decimal digits optionally
        followed by one apostrophe, a leading zero (``01``), an index of 2^31 or more before the
        hardened flag, or more than :data:`MAX_DEPTH` steps."""
        if not text:
            raise ValueError("the derivation path is empty")
        steps = text.split("/")
        if len(steps) > MAX_DEPTH:
            raise ValueError(f"the derivation path has {len(steps)} steps; at most {MAX_DEPTH} are allowed")
        indexes: list[int] = []
        for position, step in enumerate(steps, start=1):
            hardened = step.endswith("'")
            digits = step[:-1] if hardened else step
            if not digits:
                raise ValueError(f"step {position} of the derivation path is empty")
            if not (digits.isascii() and digits.isdigit()):
                raise ValueError(f"step {position} of the derivation path ('{step}') is not an index: "
                                 "write decimal digits, with an apostrophe for a hardened index (44')")
            if len(digits) > 1 and digits[0] == "0":
                raise ValueError(f"step {position} of the derivation path ('{step}') has a leading zero")
            index = int(digits)
            if index >= HARDENED:
                raise ValueError(f"step {position} of the derivation path ('{step}') is {index}; indexes are "
                                 f"below 2^31 ({HARDENED}), hardened ones marked with an apostrophe")
            indexes.append(index + HARDENED if hardened else index)
        return cls(tuple(indexes))

    @property
    def hardened_only(self) -> bool:
        return all(index >= HARDENED for index in self.indexes)

    def __str__(self) -> str:
        return "/".join(f"{i - HARDENED}'" if i >= HARDENED else str(i) for i in self.indexes)


def split_key_name(name: str) -> tuple[str, str | None]:
    """(master label, path text or None) of a key name: the path starts at the first ``/``."""
    master, slash, path = name.partition("/")
    return master, (path if slash else None)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Public facts of a master or derived node (BIP-32 key data, no private material).

    ``chain_code``: 32 bytes. ``parent_fingerprint``: the first 4 bytes of HASH160 of the parent's
    compressed public key (zero for a master). ``extended_public_key``: the BIP-32 ``xpub``
    serialisation (mainnet version bytes), for secp256k1 only — SLIP-0010 defines none for the
    other curves.
    """

    scheme: DerivationScheme
    chain_code: bytes
    depth: int = 0
    child_number: int = 0
    parent_fingerprint: bytes = b"\x00\x00\x00\x00"
    extended_public_key: str | None = None

    def to_record(self) -> dict[str, str | int | None]:
        """The JSON object a store keeps beside the sealed material."""
        return {"scheme": self.scheme.value, "chainCode": self.chain_code.hex(), "depth": self.depth,
                "childNumber": self.child_number, "parentFingerprint": self.parent_fingerprint.hex(),
                "xpub": self.extended_public_key}

    @classmethod
    def from_record(cls, record: dict[str, str | int | None]) -> NodeInfo:
        xpub = record.get("xpub")
        return cls(DerivationScheme(str(record["scheme"])), bytes.fromhex(str(record["chainCode"])),
                   int(record.get("depth") or 0), int(record.get("childNumber") or 0),
                   bytes.fromhex(str(record.get("parentFingerprint") or "00000000")),
                   str(xpub) if xpub else None)
