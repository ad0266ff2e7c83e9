"""Key objects on a token: which attribute carries which :class:`~hsmgate.hsm.base.KeyAttributes` field, how
attribute values are packed, and the facts of a key read from its attributes (size, curve, public key).

Secret values are never read here; only public attributes and the key's flags.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import pkcs11
from asn1crypto.core import ObjectIdentifier, OctetString, PrintableString
from asn1crypto.core import load as asn1_load
from cryptography.hazmat.primitives.asymmetric import dsa, ed448, ed25519, rsa
from pkcs11 import Attribute
from pkcs11.attributes import AttributeMapper
from pkcs11.util.ec import encode_ec_public_key

from hsmgate.hsm import softcrypto
from hsmgate.hsm.base import HashAlg, KeyType
from hsmgate.hsm.pkcs11.mechanisms import HMAC_KEYS

#: KeyAttributes field -> attribute on the private (or secret) key object.
PRIVATE_FLAGS: dict[str, Attribute] = {
    "sign": Attribute.SIGN, "decrypt": Attribute.DECRYPT, "unwrap": Attribute.UNWRAP,
    "derive": Attribute.DERIVE, "sensitive": Attribute.SENSITIVE, "extractable": Attribute.EXTRACTABLE,
    "modifiable": Attribute.MODIFIABLE, "destroyable": Attribute.DESTROYABLE, "copyable": Attribute.COPYABLE,
}
#: KeyAttributes field -> attribute on the public key object (on the secret key object for a secret key).
PUBLIC_FLAGS: dict[str, Attribute] = {"encrypt": Attribute.ENCRYPT, "verify": Attribute.VERIFY,
                                      "wrap": Attribute.WRAP}
#: KeyAttributes field -> attribute the token keeps about the key's past (read only).
HISTORY_FLAGS: dict[str, Attribute] = {"always_sensitive": Attribute.ALWAYS_SENSITIVE,
                                       "never_extractable": Attribute.NEVER_EXTRACTABLE}
#: The PKCS#11 defaults of flags a PKCS#11 2.20 token may not report (CKA_DESTROYABLE, CKA_COPYABLE are 2.40).
UNREPORTED_DEFAULTS: dict[str, bool] = {"modifiable": True, "destroyable": True, "copyable": True}
#: Template attributes dropped, and the creation tried once more, when a token refuses the template: a PKCS#11
#: 2.20 module may not know them.
OPTIONAL_ATTRIBUTES: tuple[Attribute, ...] = (Attribute.DESTROYABLE, Attribute.COPYABLE,
                                              Attribute.ALLOWED_MECHANISMS)
#: python-pkcs11 errors of a refused template (:data:`OPTIONAL_ATTRIBUTES` are dropped, and it is retried).
TEMPLATE_REFUSED: tuple[type[pkcs11.exceptions.PKCS11Error], ...] = (
    pkcs11.exceptions.AttributeTypeInvalid, pkcs11.exceptions.AttributeValueInvalid,
    pkcs11.exceptions.TemplateInconsistent,
)


def _make_mapper() -> AttributeMapper:
    """python-pkcs11's mapper plus Attribute.ALLOWED_MECHANISMS, and key types read as plain ints."""
    mapper, ulong = AttributeMapper(), struct.Struct("L")
    mapper.register_handler(Attribute.ALLOWED_MECHANISMS, lambda v: b"".join(ulong.pack(int(m)) for m in v),
                            lambda b: [m for (m,) in ulong.iter_unpack(b)])
    mapper.register_handler(Attribute.KEY_TYPE, lambda v: ulong.pack(int(v)), lambda b: ulong.unpack(b)[0])
    return mapper


ATTRIBUTE_MAPPER: AttributeMapper = _make_mapper()
"""The attribute mapper of every session the backend opens: python-pkcs11's, plus CKA_ALLOWED_MECHANISMS as
a list of ints, and CKA_KEY_TYPE read as a plain int (so vendor key types do not fail to unpack)."""

_ED_NAMES = {"edwards25519": softcrypto.ED25519_OID, "edwards448": softcrypto.ED448_OID}
_ED_PUBLIC_KEYS = {softcrypto.ED25519_OID: ed25519.Ed25519PublicKey,
                   softcrypto.ED448_OID: ed448.Ed448PublicKey}


def hmac_type(attrs: Mapping[int, Any]) -> KeyType:
    """The HMAC key type of a generic secret: from CKA_ALLOWED_MECHANISMS, else guessed from CKA_VALUE_LEN."""
    allowed = set(attrs.get(Attribute.ALLOWED_MECHANISMS) or [])
    for key_type, row in HMAC_KEYS.items():
        if row.mechanism in allowed:
            return key_type
    guessed = HashAlg.for_digest_size(attrs.get(Attribute.VALUE_LEN, 0))
    return next((t for t, row in HMAC_KEYS.items() if row.hash is guessed), KeyType.HMAC_SHA256)


def curve_oid(params: bytes | None) -> str | None:
    """Dotted OID from CKA_EC_PARAMS: a named-curve OID, or a PrintableString naming an Edwards curve."""
    try:
        value = asn1_load(params) if params else None
    except ValueError:
        return None
    if isinstance(value, ObjectIdentifier):
        return value.dotted
    return _ED_NAMES.get(value.native) if isinstance(value, PrintableString) else None


def _ec_point(raw: bytes, edwards: bool) -> bytes:
    """CKA_EC_POINT as the bare point: most tokens wrap it in an OCTET STRING, some do not."""
    try:
        inner = bytes(OctetString.load(raw, strict=True).native)
    except ValueError:
        return raw
    plausible = len(inner) in (32, 57) if edwards else inner[:1] in (b"\x02", b"\x03", b"\x04")
    return inner if plausible else raw


def public_facts(key_type: KeyType, key: Any,
                 public: Any | None) -> tuple[int | None, str | None, bytes | None]:
    """(size in bits, curve OID, DER SubjectPublicKeyInfo or None) of an asymmetric key, read from the
    public attributes of ``public`` (the public key object) or, without one, of ``key`` (python-pkcs11 key
    objects)."""
    source = public if public is not None else key

    def integers(*names: Attribute) -> list[int]:
        attrs = source.get_attributes(list(names))
        return [int.from_bytes(attrs.get(name, b""), "big") for name in names]

    if key_type is KeyType.RSA:
        n, e = integers(Attribute.MODULUS, Attribute.PUBLIC_EXPONENT)
        spki = softcrypto.spki_der(rsa.RSAPublicNumbers(e, n).public_key()) if e else None
        return n.bit_length(), None, spki
    if key_type is KeyType.DSA:
        p, q, g = integers(Attribute.PRIME, Attribute.SUBPRIME, Attribute.BASE)
        if public is None:  # the private object's CKA_VALUE is the secret x
            return p.bit_length(), None, None
        y = int.from_bytes(public[Attribute.VALUE], "big")
        numbers = dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g))
        return p.bit_length(), None, softcrypto.spki_der(numbers.public_key())
    params = source[Attribute.EC_PARAMS]
    oid = curve_oid(params)
    point = _ec_point(public[Attribute.EC_POINT], key_type is KeyType.ED) if public is not None else None
    if key_type is KeyType.ED:
        if not point or oid is None or oid not in _ED_PUBLIC_KEYS:
            return softcrypto.ED_CURVES.get(oid or ""), oid, None
        ed_key = _ED_PUBLIC_KEYS[oid].from_public_bytes(point)  # type: ignore[attr-defined]
        return softcrypto.ED_CURVES[oid], oid, softcrypto.spki_der(ed_key)
    size = softcrypto.EC_CURVES[oid][1] if oid in softcrypto.EC_CURVES else None
    if not point:  # a private key without its public object (made by C_UnwrapKey)
        return size, oid, None
    encoded = {Attribute.EC_PARAMS: params, Attribute.EC_POINT: OctetString(point).dump()}
    spki = encode_ec_public_key(encoded)  # type: ignore[arg-type]  # it only indexes the two attributes
    return size, oid, spki if point else None
