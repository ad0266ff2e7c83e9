"""Key derivation rules (BIP-32 / SLIP-0010; reference wave 2 §1): which keys derive, how key names
with a path are read, and what a derived key reports.

* A derivation master is an EC or ED key created with ``derive: true`` and ``bip32`` and/or
  ``slip10`` (``POST /v1/key``) or imported from a seed (``POST /v1/importedKey``). The scheme is
  fixed then, by the reference's (bip32, slip10) table (:func:`scheme_for`).
* A key name ``<master>/<path>`` names the master's child (``wallet/44'/0'/0'/0/5``): a persisted
  child (``POST /v1/derivedKey``) if one has that name, else a child derived for this request only.
  The master's password, internal flag and SKA policy govern its children: the key-use gate reads
  the key state of :attr:`KeyName.master`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsmgate.domain import errors
from hsmgate.domain.algorithms import SECP256K1_OID
from hsmgate.hsm.base import KeyInfo, KeyType
from hsmgate.hsm.derivation import DerivationPath, DerivationScheme, NodeInfo, split_key_name

#: ``derivationType`` as the TSB reports it, per key type (reference §1.1 table and §1.6: EC keys
#: report ``SLIP-10``; an ED key with slip10 reports ``ADA/SLIP-10``, and derives as SLIP-0010
#: ed25519 — hardened only, 400 otherwise, as TSB 2.1.0 does).
WIRE_DERIVATION_TYPE: dict[KeyType, str] = {KeyType.EC: "SLIP-10", KeyType.ED: "ADA/SLIP-10"}

P256_OID = "1.2.840.10045.3.1.7"
ED25519_OID = "1.3.101.112"
#: Curves a master may be made on (reference §1.1 "Curves").
DERIVATION_CURVES: frozenset[str] = frozenset({SECP256K1_OID, P256_OID, ED25519_OID})


class SecurityNotAllowed(errors.TsbError):
    """400 ``res.error.security.not.allowed``: what the TSB answers for an Ed25519 SLIP-10 path
    with an unhardened element."""

    code = 400


class DerivationNotSupported(errors.TsbError):
    """634 ``res.error.derivation.not.supported.by.algorithm``."""

    code = 634


@dataclass(frozen=True, slots=True)
class KeyName:
    """A key name an operation uses: a plain label, or a master's label and a path."""

    master: str
    path: DerivationPath | None = None

    @property
    def label(self) -> str:
        """The canonical name (the one a persisted child is stored under)."""
        return self.master if self.path is None else f"{self.master}/{self.path}"


def parse_key_name(name: str, *, field: str = "key name") -> KeyName:
    """``name`` read as ``<label>[/<path>]``; 610 for a malformed path (:meth:`DerivationPath.parse`)."""
    master, path_text = split_key_name(name)
    if path_text is None:
        return KeyName(master)
    if not master:
        raise errors.InvalidKeyName(f"{field} '{name}' has a derivation path but no master key label")
    try:
        path = DerivationPath.parse(path_text)
    except ValueError as exc:
        raise errors.InvalidKeyName(f"{field} '{name}': {exc}") from None
    if str(path) != path_text:  # DerivationPath.parse is strict, so this cannot differ; kept as a guard
        raise errors.InvalidKeyName(f"{field} '{name}': write the path as {path}")
    return KeyName(master, path)


def parse_path(text: str, *, field: str = "derivationPath") -> DerivationPath:
    """The ``derivationPath`` of ``POST /v1/derivedKey`` (600 when malformed)."""
    try:
        return DerivationPath.parse(text)
    except ValueError as exc:
        raise errors.ValidationFailed(f"'{field}': {exc}") from None


def scheme_for(key_type: KeyType, curve_oid: str | None, *, bip32: bool, slip10: bool) -> DerivationScheme:
    """The reference's (bip32, slip10) table: EC → SLIP-0010 (which on secp256k1 is BIP-32), ED
    with slip10 → SLIP-0010 ed25519; ED with bip32 alone is Cardano (ADA) derivation, which hsmgate
    does not implement (634). Other algorithms and curves: 634."""
    if key_type is KeyType.ED and bip32 and not slip10:
        raise DerivationNotSupported(
            "'attributes.bip32' without 'attributes.slip10' on an ED key asks for Cardano (ADA) derivation, "
            "which hsmgate does not implement; set 'slip10': true for SLIP-0010 ed25519 derivation")
    if key_type not in WIRE_DERIVATION_TYPE:
        raise DerivationNotSupported(f"key derivation (bip32/slip10) needs an EC or ED key, not {key_type}")
    if curve_oid not in DERIVATION_CURVES:
        raise DerivationNotSupported(
            f"key derivation is available on secp256k1 ({SECP256K1_OID}), NIST P-256 ({P256_OID}) and "
            f"Ed25519 ({ED25519_OID}), not on curve {curve_oid}")
    return DerivationScheme.SLIP10


def check_child_path(master: KeyInfo, name: KeyName) -> None:
    """Refuse a path on a key that is no derivation master (614) and an unhardened step under an
    Ed25519 master (400)."""
    if name.path is None:
        return
    if master.derivation is None or master.derivation.depth != 0:
        raise errors.OperationForbiddenForKey(
            f"key '{name.master}' is not a derivation master (created with derive and bip32/slip10): "
            f"'{name.label}' cannot be derived")
    if master.key_type is KeyType.ED and not name.path.hardened_only:
        raise SecurityNotAllowed(
            f"key name '{name.label}': Ed25519 SLIP-10 derivation has hardened steps only (write 0', not 0)")


def derived_attributes(info: KeyInfo) -> dict[str, str] | None:
    """``derivedAttributes`` of a master or child: its ``derivationType`` and ``derivationValue``
    (the node's 32-byte chain code, upper-case hex, as the reference's example)."""
    node: NodeInfo | None = info.derivation
    if node is None:
        return None
    return {"derivationType": WIRE_DERIVATION_TYPE.get(info.key_type, "SLIP-10"),
            "derivationValue": node.chain_code.hex().upper()}
