"""Key attestation: the TSB's attribute XML document and its signature by the attestation key.

The XML follows the reference (§4.6): element names are the snake_case of the JSON names, tab
indentation, ``\\n`` line ends and a trailing newline. ``xmlSignature`` is RSASSA-PKCS1-v1_5 with
SHA-256 over the exact UTF-8 bytes of that document, made inside the backend by the partition's
attestation key, so ``openssl dgst -sha256 -verify attestation.pem -signature sig key.xml`` accepts it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

from hsmgate.domain.ska.policy import Policy, policy_xml
from hsmgate.hsm.base import HashAlg, KeyAttributes, SignMechanism, SignScheme

ATTESTATION_MECHANISM = SignMechanism(SignScheme.RSA_PKCS1V15, HashAlg.SHA256)
_XML_ENTITIES = {"'": "&apos;", '"': "&quot;"}


@dataclass(frozen=True, slots=True)
class KeyView:
    """Everything the key JSON and XML say about one key, in domain terms."""

    label: str
    key_id: str | None
    algorithm: str
    algorithm_oid: str
    curve_oid: str | None
    key_size: int | None
    create_time: datetime
    attest_time: datetime
    public_key: bytes | None  # DER SubjectPublicKeyInfo
    attributes: KeyAttributes
    asymmetric: bool
    creation: str = "generated"
    #: SKA keys: the policy, and ``(address hex, format)`` of ``addressFormat``
    policy: Policy | None = None
    address_truncated: tuple[str, str] | None = None
    public_only: bool = False  # an imported public key (or certificate) without its private key
    #: a derivation master or child: ``{derivationType, derivationValue}`` and its BIP-32 xpub (secp256k1)
    derivation: dict[str, str] | None = None
    extended_public_key: str | None = None
    #: a stateful (LMS) key: (one-time keys used, one-time keys in all)
    one_time_keys: tuple[int, int] | None = None


def iso_z(moment: datetime) -> str:
    """ISO-8601 UTC with ``Z`` and second precision, as the TSB prints times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def attestation_xml(view: KeyView) -> str:
    """The attribute document of a key, byte for byte as it is signed."""
    root = ("public_key" if view.public_only else "private_key") if view.asymmetric else "secret_key"
    attrs = view.attributes
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<{root} creation={quoteattr(view.creation)}>",
        f"\t<label>{escape(view.label, _XML_ENTITIES)}</label>",
    ]
    if view.key_id is not None:
        lines.append(f"\t<id>{escape(view.key_id, _XML_ENTITIES)}</id>")
    lines += [
        f"\t<create_time>{iso_z(view.create_time)}</create_time>",
        f"\t<attest_time>{iso_z(view.attest_time)}</attest_time>",
        f"\t<algorithm>{escape(view.algorithm)}</algorithm>",
        f"\t<algorithm_oid>{view.algorithm_oid}</algorithm_oid>",
    ]
    if view.curve_oid:
        lines.append(f"\t<curve_oid>{view.curve_oid}</curve_oid>")
    if view.key_size is not None:
        lines.append(f"\t<key_size>{view.key_size}</key_size>")
    if view.public_key is not None:
        lines.append(f"\t<public_key>{base64.b64encode(view.public_key).decode()}</public_key>")
    if view.derivation is not None:
        lines.append(f"\t<derivation_value type={quoteattr(view.derivation['derivationType'])}>"
                     f"{view.derivation['derivationValue']}</derivation_value>")
    if view.address_truncated is not None:
        address, address_format = view.address_truncated
        lines.append(f"\t<address_truncated format={quoteattr(address_format)}>{address}</address_truncated>")
    lines += [
        "\t<attributes>",
        f"\t\t<decrypt>{_bool(attrs.decrypt)}</decrypt>",
        f"\t\t<sign>{_bool(attrs.sign)}</sign>",
        f"\t\t<unwrap>{_bool(attrs.unwrap)}</unwrap>",
        f"\t\t<derive>{_bool(attrs.derive)}</derive>",
        f"\t\t<sensitive>{_bool(attrs.sensitive)}</sensitive>",
        f"\t\t<always_sensitive>{_bool(attrs.always_sensitive)}</always_sensitive>",
        f"\t\t<extractable>{_bool(attrs.extractable)}</extractable>",
        f"\t\t<never_extractable>{_bool(attrs.never_extractable)}</never_extractable>",
        f"\t\t<modifiable>{_bool(attrs.modifiable)}</modifiable>",
        f"\t\t<copyable>{_bool(attrs.copyable)}</copyable>",
        f"\t\t<destroyable>{_bool(attrs.destroyable)}</destroyable>",
        "\t</attributes>",
    ]
    if view.policy is not None:
        lines += policy_xml(view.policy)
    lines += [
        f"</{root}>",
        "",
    ]
    return "\n".join(lines)
