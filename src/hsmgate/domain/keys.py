"""Key management rules: create, describe, list and delete keys of one partition."""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from hsmgate.domain import errors
from hsmgate.domain.algorithms import (
    CURVES,
    KEY_ALGORITHM_BY_OID,
    KEY_ALGORITHM_BY_TYPE,
    KEY_ALGORITHMS,
    UNSUPPORTED_KEY_ALGORITHMS,
    KeyAlgorithm,
)
from hsmgate.domain.attestation import ATTESTATION_MECHANISM, KeyView, attestation_xml
from hsmgate.domain.derivation import (
    DerivationNotSupported,
    KeyName,
    check_child_path,
    derived_attributes,
    parse_key_name,
    parse_path,
    scheme_for,
)
from hsmgate.domain.hsm_errors import translated
from hsmgate.domain.ska import addresses
from hsmgate.domain.ska.guard import guard_bits, load_policy, policy_json
from hsmgate.domain.ska.policy import Policy, resolve_onboarded
from hsmgate.domain.text import character_name, unsafe_character
from hsmgate.hsm.base import KeyAttributes, KeyInfo, KeySpec, KeyType, Partition
from hsmgate.hsm.derivation import SEED_BITS, DerivationScheme
from hsmgate.store.key_metadata import KeyMetadataRepository

MAX_LABEL_LENGTH = 256
_LABEL_FORBIDDEN = re.compile(r"[/\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class NewKey:
    """A validated-at-the-wire request to create a key; the domain checks the rest."""

    label: str
    algorithm: str | None
    algorithm_oid: str | None
    key_size: int | None
    curve_oid: str | None
    attributes: KeyAttributes
    key_id: str | None = None
    #: SKA: the validated policy (None: a plain key) and ``addressFormat.format``
    policy: Policy | None = None
    address_format: str | None = None
    #: ``attributes.bip32`` / ``attributes.slip10``: a derivation master (``domain/derivation.py``)
    bip32: bool = False
    slip10: bool = False


@dataclass(frozen=True, slots=True)
class SeedImport:
    """``POST /v1/importedKey``: a derivation master made from a caller's BIP-32 seed."""

    label: str
    seed: bytes
    curve_oid: str
    algorithm: str | None
    attributes: KeyAttributes
    bip32: bool
    slip10: bool
    policy: Policy | None = None
    address_format: str | None = None


@dataclass(frozen=True, slots=True)
class DeriveRequest:
    """``POST /v1/derivedKey``: persist the master's child at ``path``; ``attributes`` None copies
    the master's."""

    master: str
    path: str
    attributes: KeyAttributes | None


@dataclass(frozen=True, slots=True)
class KeyAddress:
    """A key's blockchain address: the TSB's hash base and (extension) the full text form."""

    format: str
    hash: bytes  # BTC: HASH160 of the compressed key; ETH: the last 20 bytes of Keccak-256
    text: str  # BTC: bech32 P2WPKH (bc1q…); ETH: EIP-55 (0x…)


@dataclass(frozen=True, slots=True)
class SignedKey:
    """A key description with its attestation: what every key endpoint returns."""

    view: KeyView
    xml: str
    xml_signature: str  # base64
    attestation_key_name: str


def utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_label(label: str, field: str = "label") -> None:
    """Refuse empty, over-long and reserved-character labels (``/`` is for derivation paths), and
    labels that would not read as what they are: control and format characters (zero-width,
    bidi overrides and isolates; :mod:`hsmgate.domain.text`) and labels not in Unicode NFC.

    Why refuse rather than normalise to NFC: a label is looked up by exact string in the backend,
    the metadata (passwords, policies) and the audit log. Rewriting it on creation only would
    leave the caller holding a spelling no lookup finds, and rewriting it on every lookup would
    have to reach every one of them, or two spellings would reach different records (the key
    found, its password record missed). A refused label is one clear 610 to fix at the client."""
    if not label or not label.strip():
        raise errors.ValidationFailed(f"'{field}' must not be empty")
    if len(label) > MAX_LABEL_LENGTH:
        raise errors.InvalidKeyName(f"'{field}' must be at most {MAX_LABEL_LENGTH} characters")
    if _LABEL_FORBIDDEN.search(label):
        raise errors.InvalidKeyName(
            f"'{field}' must not contain '/' or control characters (derivation paths are not supported)"
        )
    char = unsafe_character(label)
    if char is not None:
        raise errors.InvalidKeyName(
            f"'{field}' must not contain control or invisible formatting characters (found {character_name(char)})")
    if not unicodedata.is_normalized("NFC", label):
        raise errors.InvalidKeyName(
            f"'{field}' must be in Unicode normalisation form NFC (composed characters, e.g. U+00E9 for 'é', "
            "not 'e' followed by U+0301)")


def check_existing_label(label: str) -> None:
    """A label naming a key that may exist: only what no key can have is refused (600 empty, 610
    by :func:`check_key_name`). Keys made before :func:`check_label` became stricter, or outside
    hsmgate on a PKCS#11 token, stay readable and deletable."""
    if not label or not label.strip():
        raise errors.ValidationFailed("'label' must not be empty")
    check_key_name(label)


_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
#: A key name is a label (at most 256 characters) and, for a derived key, a path (at most 32 steps).
MAX_KEY_NAME_LENGTH = MAX_LABEL_LENGTH + 32 * 12


def check_key_name(label: str) -> KeyName:
    """A key name an operation refers to, as ``<label>`` or ``<master>/<path>``
    (``domain/derivation.py``): a name no key can have is refused as at creation (610), not
    looked up (650). The one place key names are read: the key-use gate takes the master's key
    state (password, internal flag, SKA policy) from the result."""
    if len(label) > MAX_KEY_NAME_LENGTH or _NAME_FORBIDDEN.search(label):
        raise errors.InvalidKeyName("key names have no control characters, and labels at most 256 characters")
    name = parse_key_name(label)
    if len(name.master) > MAX_LABEL_LENGTH:
        raise errors.InvalidKeyName(f"key labels have at most {MAX_LABEL_LENGTH} characters")
    return name


def key_info(partition: Partition, label: str) -> KeyInfo:
    """The key named by an operation: 610 for an impossible name (:func:`check_key_name`), 650
    when it (or a child's master) does not exist; for ``<master>/<path>`` 613 when the backend
    does not derive, 614 when the master is no derivation master, 400 for an unhardened Ed25519
    step."""
    name = check_key_name(label)
    with translated():
        if name.path is not None:
            if not partition.capabilities().derivation:
                raise errors.InvalidKeyType(
                    f"key name '{label}': the {partition.capabilities().backend} backend does not derive keys "
                    "(no standard PKCS#11 mechanism for BIP-32 / SLIP-0010)")
            check_child_path(partition.get(name.master), name)
        return partition.get(name.label)


def resolve_algorithm(algorithm: str | None, algorithm_oid: str | None) -> KeyAlgorithm:
    """The registry row named by ``algorithm`` (preferred) or ``algorithmOid``."""
    if algorithm:
        row = KEY_ALGORITHMS.get(algorithm)
        if row is not None:
            return row
        if algorithm in UNSUPPORTED_KEY_ALGORITHMS:
            raise errors.InvalidKeyType(f"key algorithm '{algorithm}' is not supported by hsmgate")
        raise errors.ValidationFailed(
            f"Value '{algorithm}' is not valid for field 'algorithm'; expected one of "
            + ", ".join(KEY_ALGORITHMS)
        )
    if algorithm_oid:
        row = KEY_ALGORITHM_BY_OID.get(algorithm_oid)
        if row is None:
            raise errors.ValidationFailed(f"Value '{algorithm_oid}' is not valid for field 'algorithmOid'")
        return row
    raise errors.ValidationFailed("'algorithm' must not be empty (or give 'algorithmOid')")


def requested_attributes(values: Mapping[str, object], *, public_only: bool = False,
                         derivation: bool = False) -> KeyAttributes:
    """The attributes an ``AttributesDto`` (its JSON object, camelCase names) asks for.

    ``encrypt``, ``verify`` and ``wrap`` (absent from key responses) default to their counterparts
    ``decrypt``, ``sign`` and ``unwrap`` — a key made to decrypt may encrypt — and, for a public
    key alone, to true; ``sensitive`` defaults to true. ``bip32`` / ``slip10`` ask for a
    derivation master: only where ``derivation`` (``POST /v1/key``, ``/v1/importedKey``, which
    read them themselves), else 634."""
    def flag(name: str, default: bool = False) -> bool:
        value = values.get(name)
        return default if value is None else bool(value)

    if not derivation and (flag("bip32") or flag("slip10")):
        raise DerivationNotSupported("'attributes.bip32'/'attributes.slip10': derivation masters are made by "
                                     "POST /v1/key (generated) or POST /v1/importedKey (from a seed)")

    decrypt, sign, unwrap = flag("decrypt"), flag("sign"), flag("unwrap")

    def counterpart(name: str, default: bool) -> bool:
        return flag(name, True if public_only else default)

    return KeyAttributes(
        decrypt=decrypt and not public_only, sign=sign and not public_only, unwrap=unwrap and not public_only,
        derive=flag("derive"), encrypt=counterpart("encrypt", decrypt), verify=counterpart("verify", sign),
        wrap=counterpart("wrap", unwrap), sensitive=flag("sensitive", True), extractable=flag("extractable"),
        modifiable=flag("modifiable", True), destroyable=flag("destroyable"), copyable=flag("copyable"),
    )


class KeyService:
    """Key management for one partition."""

    def __init__(self, partition: Partition, metadata: KeyMetadataRepository, *,
                 attestation_key_name: str, clock: Callable[[], datetime] | None = None) -> None:
        self.partition = partition
        self._metadata = metadata
        self.attestation_key_name = attestation_key_name
        self._clock = clock or (lambda: datetime.now(UTC))
        #: called with the label after a key was deleted (the SKA requests cancel its pending requests)
        self.on_delete: list[Callable[[str], None]] = []
        #: approver name → its DER certificate, or None (approver management, ``domain/ska/approvers.py``):
        #: resolves the ``onboarded_approver_certificate`` approvals of policies when they are read
        self.approver_certificate: Callable[[str], bytes | None] = lambda _name: None

    def _now(self) -> datetime:
        return self._clock().replace(microsecond=0)

    # -- lifecycle -------------------------------------------------------------------------

    def ensure_attestation_key(self, size: int = 2048) -> None:
        """Create the partition's RSA attestation key if it is absent. Safe to race on the soft token;
        a PKCS#11 token accepts a second key with the same label, so starting processes call this
        one at a time (bootstrap: ``Database.start_up_lock``)."""
        with translated():
            if self.attestation_key_name in self.partition.list_labels():
                return
            attributes = KeyAttributes(sign=True, sensitive=True, extractable=False,
                                       modifiable=False, destroyable=False)
            try:
                self.partition.generate(self.attestation_key_name, KeySpec(KeyType.RSA, size), attributes)
            except Exception:  # another process may have won the race
                if self.attestation_key_name not in self.partition.list_labels():
                    raise
        self._metadata.record_creation(self.attestation_key_name, self._now())

    def create(self, request: NewKey) -> SignedKey:
        check_label(request.label)
        algorithm = resolve_algorithm(request.algorithm, request.algorithm_oid)
        spec = self._spec(algorithm, request)
        attributes = request.attributes
        if not (attributes.decrypt or attributes.sign or attributes.unwrap):
            raise errors.KeyAttributesInvalid("at least one of 'decrypt', 'sign' or 'unwrap' must be true")
        if request.bip32 or request.slip10:
            spec = replace(spec, derivation=self._derivation_scheme(spec.key_type, spec.curve_oid, attributes,
                                                                    bip32=request.bip32, slip10=request.slip10))
        key_id = request.key_id.encode() if request.key_id else None
        return self._make(request.label, spec, request.policy, request.address_format, request.attributes,
                          lambda: self.partition.generate(request.label, spec, attributes, key_id),
                          key_id=request.key_id)

    def _derivation_scheme(self, key_type: KeyType, curve_oid: str | None, attributes: KeyAttributes, *,
                           bip32: bool, slip10: bool) -> DerivationScheme:
        """The scheme of a new master: ``derive`` must be set (606), the (bip32, slip10) table
        (634), the backend must declare it (613)."""
        if not attributes.derive:
            raise errors.KeyAttributesInvalid("'attributes.bip32'/'attributes.slip10' need 'attributes.derive': true")
        scheme = scheme_for(key_type, curve_oid, bip32=bip32, slip10=slip10)
        caps = self.partition.capabilities()
        if not caps.can_derive(scheme, curve_oid):
            raise errors.InvalidKeyType(f"{scheme} derivation on curve {curve_oid} is not supported by the "
                                        f"{caps.backend} backend (no standard PKCS#11 mechanism)")
        return scheme

    def import_seed(self, request: SeedImport) -> SignedKey:
        """A derivation master from a caller's seed (``POST /v1/importedKey``)."""
        check_label(request.label)
        curve = CURVES.get(request.curve_oid)
        if curve is None:
            raise errors.ValidationFailed(f"Value '{request.curve_oid}' is not valid for field 'curveOid'")
        if request.algorithm and request.algorithm != curve.key_type.value:
            raise errors.ValidationFailed(
                f"'algorithm' {request.algorithm} does not match curve {curve.name} ({curve.key_type})")
        if not (request.bip32 or request.slip10):
            raise errors.KeyAttributesInvalid(
                "a seed makes a derivation master: set 'attributes.derive' and 'attributes.bip32' or 'attributes.slip10'")
        low, high = SEED_BITS
        if not low <= len(request.seed) * 8 <= high:
            raise errors.ValidationFailed(f"'seed' has {len(request.seed) * 8} bits; {low} to {high} are allowed "
                                          "(256 advised)")
        attributes = request.attributes
        if not (attributes.decrypt or attributes.sign or attributes.unwrap):
            raise errors.KeyAttributesInvalid("at least one of 'decrypt', 'sign' or 'unwrap' must be true")
        scheme = self._derivation_scheme(curve.key_type, request.curve_oid, attributes,
                                         bip32=request.bip32, slip10=request.slip10)
        spec = KeySpec(curve.key_type, curve_oid=request.curve_oid, derivation=scheme)
        return self._make(request.label, spec, request.policy, request.address_format, attributes,
                          lambda: self.partition.import_seed(request.label, seed=request.seed,
                                                             curve_oid=request.curve_oid, scheme=scheme,
                                                             attributes=attributes),
                          origin="imported")

    def derive(self, request: DeriveRequest) -> SignedKey:
        """Persist a master's child as ``<master>/<path>`` (``POST /v1/derivedKey``). Without
        attributes it gets the master's; ``modifiable`` cannot be true under a master that is not."""
        check_label(request.master, "masterKeyLabel")
        path = parse_path(request.path)
        name = KeyName(request.master, path)
        with translated():
            master = self.partition.get(request.master)
        check_child_path(master, name)
        attributes = request.attributes or master.attributes
        if request.attributes is not None:
            if attributes.modifiable and not master.attributes.modifiable:
                raise errors.KeyAttributesInvalid("'attributes.modifiable' cannot be true: the master key is not modifiable")
            if not (attributes.decrypt or attributes.sign or attributes.unwrap):
                raise errors.KeyAttributesInvalid("at least one of 'decrypt', 'sign' or 'unwrap' must be true")
        with translated():
            info = self.partition.derive_key(request.master, path, attributes=attributes)
        created = self._metadata.created_at(request.master) or utc(info.created_at or self._now())
        return self._signed(info, utc(created))

    def _make(self, label: str, spec: KeySpec, policy: Policy | None, address_format: str | None,
              attributes: KeyAttributes, make: Callable[[], KeyInfo], origin: str | None = None,
              key_id: str | None = None) -> SignedKey:
        if policy is not None or address_format is not None:
            return self._create_ska(label, spec, policy, address_format, attributes, make, origin, key_id)
        with translated():
            info = make()
        created = self._metadata.record_new_key(label, utc(info.created_at or self._now()), key_id=key_id or None)
        if origin:
            self._metadata.set_origin(label, origin, public_only=False, when=created)
        return self._signed(info, created)

    # -- SKA keys --------------------------------------------------------------------

    def _create_ska(self, label: str, spec: KeySpec, policy: Policy | None, requested_format: str | None,
                    attributes: KeyAttributes, make: Callable[[], KeyInfo], origin: str | None,
                    key_id: str | None) -> SignedKey:
        """A key with a policy: asymmetric only (613), never extractable (606), addressFormat
        only here (630 without policy). The policy row is written *before* the key exists, so the
        key is never usable without its policy."""
        if policy is None:
            raise errors.InvalidAddressOnNonSkaKey("'addressFormat' is only allowed on keys with a policy (SKA keys)")
        self.resolved(policy, field="policy")  # 654: the onboarded approvers it names must exist
        if not spec.key_type.is_asymmetric:
            raise errors.InvalidKeyType(
                f"'policy': Smart Key Attributes need an asymmetric key, not {spec.key_type}")
        if attributes.extractable:
            raise errors.KeyAttributesInvalid("'attributes.extractable' must be false for a key with a policy (SKA keys)")
        address_format = None
        if requested_format is not None:
            address_format = addresses.check_format(requested_format, spec.key_type, spec.curve_oid)
        stored, guard = policy_json(policy), guard_bits(policy)
        reserved = self._metadata.reserve_ska(label, self._now(), policy=stored, guard=guard,
                                              address_format=address_format)
        previous: tuple[str | None, int | None, str | None] | None = None
        if not reserved:  # a row exists: the key password's (reserved just before) or a stale one
            with translated():
                if label in self.partition.list_labels():
                    raise errors.KeyAlreadyExists(f"a key with label '{label}' already exists")
            old_policy, old_address = self._metadata.ska(label)
            previous = (old_policy, self._metadata.policy_guard(label), old_address)
            self._metadata.put_ska(label, policy=stored, guard=guard, address_format=address_format)
        try:
            with translated():
                info = make()
        except BaseException:
            if reserved:
                self._metadata.forget(label)
            elif previous is not None:
                self._metadata.put_ska(label, policy=previous[0], guard=previous[1], address_format=previous[2])
            raise
        created = self._metadata.record_new_key(label, utc(info.created_at or self._now()), key_id=key_id or None)
        if origin:
            self._metadata.set_origin(label, origin, public_only=False, when=created)
        return self._signed(info, created)

    def is_internal(self, label: str) -> bool:
        """True for a key hsmgate keeps for itself (attestation, timestamps, data objects, approver backups)."""
        return self._metadata.state(label).internal

    def ska_policy(self, label: str) -> Policy | None:
        """The key's policy, its onboarded approvers resolved; None for a key without one."""
        stored, _ = self._metadata.ska(label)
        return None if stored is None else self.resolved(load_policy(stored))

    def resolved(self, policy: Policy, *, field: str | None = None) -> Policy:
        """``policy`` with its ``onboarded_approver_certificate`` approvers resolved to their current
        certificates (:func:`hsmgate.domain.ska.policy.resolve_onboarded`); with ``field`` (a policy
        about to be set), 654 for an approver that does not exist."""
        return resolve_onboarded(policy, self.approver_certificate, field=field)

    def set_policy(self, label: str, policy: Policy) -> None:
        """Replace the policy of an SKA key (block, unblock, modify); 650 if it has no row."""
        if not self._metadata.set_ska(label, policy=policy_json(policy), guard=guard_bits(policy)):
            raise errors.KeyNotFound(f"key '{label}' not found")

    def _ska_view(self, info: KeyInfo) -> tuple[Policy | None, tuple[str, str] | None]:
        """The policy and address of a key; a derived key has its master's policy and format."""
        stored, address_format = self._metadata.ska(parse_key_name(info.label).master)
        if stored is None:
            return None, None
        address = None
        if address_format and info.public_key:
            address = (addresses.address(address_format, info.public_key).hex().upper(), address_format)
        return self.resolved(load_policy(stored)), address

    def address(self, label: str) -> KeyAddress:
        """The address of an SKA key with ``addressFormat`` (630 for other keys); a derived key
        (``<master>/<path>``) has an address when its master has a policy and a format."""
        check_existing_label(label)
        info = key_info(self.partition, label)
        stored, address_format = self._metadata.ska(check_key_name(label).master)
        if stored is None:
            raise errors.InvalidAddressOnNonSkaKey(f"key '{label}' has no policy: addresses exist only for SKA keys")
        if not address_format or not info.public_key:
            raise errors.InvalidAddressOnNonSkaKey(f"key '{label}' was created without 'addressFormat'")
        return KeyAddress(address_format, addresses.address(address_format, info.public_key),
                          addresses.address_text(address_format, info.public_key))

    def _spec(self, algorithm: KeyAlgorithm, request: NewKey) -> KeySpec:
        caps = self.partition.capabilities()
        backend = caps.backend
        if algorithm.needs_curve:
            oid = request.curve_oid
            if not oid:
                raise errors.ValidationFailed(f"'curveOid' must not be empty for algorithm {algorithm.wire_name}")
            curve = CURVES.get(oid)
            if curve is None or curve.key_type is not algorithm.key_type:
                raise errors.ValidationFailed(
                    f"Value '{oid}' is not valid for field 'curveOid' with algorithm {algorithm.wire_name}"
                )
            spec = KeySpec(algorithm.key_type, curve_oid=oid)
            if not caps.can_generate(spec):
                raise errors.InvalidKeyType(f"curve {curve.name} ({oid}) is not supported by the {backend} backend")
            return spec
        if not algorithm.sizes:  # post-quantum parameter sets: the name fixes everything, keySize is not used
            spec = KeySpec(algorithm.key_type)
            if not caps.can_generate(spec):
                raise errors.InvalidKeyType(
                    f"key algorithm {algorithm.wire_name} is not supported by the {backend} backend")
            return spec
        size = request.key_size if request.key_size is not None else algorithm.default_size
        if size not in algorithm.sizes:
            allowed = ", ".join(str(s) for s in sorted(algorithm.sizes))
            raise errors.KeySizeInvalid(
                f"'keySize' {size} is not valid for algorithm {algorithm.wire_name}; allowed: {allowed}"
            )
        spec = KeySpec(algorithm.key_type, size=size)
        if not caps.can_generate(spec):
            if algorithm.key_type in caps.key_specs:
                raise errors.KeySizeInvalid(
                    f"'keySize' {size} for {algorithm.wire_name} is not supported by the {backend} backend"
                )
            raise errors.InvalidKeyType(f"key algorithm {algorithm.wire_name} is not supported by the {backend} backend")
        return spec

    # -- queries -----------------------------------------------------------------------------

    def labels(self) -> list[str]:
        with translated():
            return self.partition.list_labels()

    def describe(self, label: str) -> SignedKey:
        """A key's signed attributes; a derived key (``<master>/<path>``, persisted or not) reports
        the master's creation time, policy and address format."""
        check_existing_label(label)
        name = check_key_name(label)
        info = key_info(self.partition, label)
        if name.path is not None:
            created = self._metadata.created_at(name.master) or utc(info.created_at or self._now())
            return self._signed(info, utc(created))
        created = self._metadata.created_at(label)
        if created is None:  # made outside hsmgate: remember when it was first seen
            created = self._metadata.record_creation(label, utc(info.created_at or self._now()))
        return self._signed(info, utc(created))

    def delete(self, label: str) -> None:
        """Destroy a key; ``<master>/<path>`` deletes a persisted child (650 when only derivable)."""
        check_existing_label(label)
        name = check_key_name(label)
        if name.path is not None:
            key_info(self.partition, label)  # 614 / 400 for a path no master derives
            with translated():
                if name.label not in self.partition.list_labels():
                    raise errors.KeyNotFound(f"key '{name.label}' is not a persisted derived key")
        with translated():
            self.partition.delete(name.label)
        if name.path is None:
            self._metadata.forget(label)
        for listener in self.on_delete:
            listener(label)

    # -- attestation ---------------------------------------------------------------------------

    def _signed(self, info: KeyInfo, created: datetime) -> SignedKey:
        facts = self._metadata.facts(parse_key_name(info.label).master)
        view = self.view(info, created, key_id=facts.key_id)
        if facts.origin or facts.public_only:  # imported or unwrapped (domain/key_transfer.py, domain/operations.py)
            view = replace(view, creation=facts.origin or view.creation, public_only=facts.public_only)
        xml = attestation_xml(view)
        with translated():
            signature = self.partition.sign(self.attestation_key_name, ATTESTATION_MECHANISM, xml.encode())
        return SignedKey(view, xml, base64.b64encode(signature).decode(), self.attestation_key_name)

    def view(self, info: KeyInfo, created: datetime, *, key_id: str | None = None) -> KeyView:
        """The description of a key. ``key_id``: the ``id`` its caller gave at creation (kept in
        hsmgate's metadata); a backend's own identifier (``info.key_id``, a PKCS#11 CKA_ID hsmgate
        drew at random to pair the halves of a key) is never shown: the TSB's clients read ``id``
        as the value they set, or null."""
        algorithm = KEY_ALGORITHM_BY_TYPE[info.key_type]
        oid = algorithm.oid
        if info.key_type is KeyType.ED and info.curve_oid:
            oid = info.curve_oid  # Ed448 reports its own OID
        size = None if info.key_type in (KeyType.EC, KeyType.ED) else info.size
        policy, address = self._ska_view(info)
        return KeyView(
            label=info.label, key_id=key_id, algorithm=algorithm.reported_name or algorithm.wire_name,
            algorithm_oid=oid,
            curve_oid=info.curve_oid, key_size=size, create_time=created, attest_time=self._now(),
            public_key=info.public_key, attributes=info.attributes,
            asymmetric=info.key_type.is_asymmetric, policy=policy, address_truncated=address,
            derivation=derived_attributes(info),
            extended_public_key=info.derivation.extended_public_key if info.derivation else None,
            one_time_keys=info.one_time_keys,
        )

