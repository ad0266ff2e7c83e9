"""The ``requestSignature`` rule of TSB 2.2.0 (wave-2 reference §5.5): with a whitelist of
application keys configured, every asynchronous request must be signed by one of them.

What is signed. An asynchronous request is an envelope ``{"<xxx>Request": {…}, "requestSignature":
{signature, digestAlgorithm, publicKey}}``. The TSB's Go client signs Go's ``json.Compact`` of the
inner request: the inner object's JSON exactly as sent, with the white space outside strings removed
(key order, escapes and number spelling untouched). So the rule works on the bytes the client sent,
never on a re-serialised model: :func:`member_value` cuts the inner object out of the body and
:func:`compact` removes the white space.

How it is checked. ``publicKey`` (base64 DER SubjectPublicKeyInfo) must be whitelisted: its SHA-256
fingerprint (hex, over the DER SubjectPublicKeyInfo) is among those of the configured certificates or
keys, else 402 (``res.error.invalid.certificate``). ``signature`` must then verify over the compacted
inner request with ``digestAlgorithm``: RSA PKCS#1 v1.5 (as the Go client signs), ECDSA (DER, as JDK
``Signature.sign()`` gives it) or Ed25519 / Ed448 (the digest is then not used), else 403
(``res.error.input.invalid.signature``) — a missing signature included.

Without a whitelist the rule is off and ``requestSignature`` is ignored, as by the TSB.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from hsmgate.domain.errors import TsbError

#: ``SignatureDto.digestAlgorithm`` values (the TSB's enum) and their hashes.
DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA-224": hashes.SHA224, "SHA-256": hashes.SHA256, "SHA-384": hashes.SHA384, "SHA-512": hashes.SHA512,
    "SHA3-224": hashes.SHA3_224, "SHA3-256": hashes.SHA3_256, "SHA3-384": hashes.SHA3_384,
    "SHA3-512": hashes.SHA3_512,
}
FIELD = "requestSignature"

# A string literal (to its end, or to the end of the body when it is not closed) or one structural
# character; everything else (numbers, literals, white space) lies between the matches.
_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)|[{}\[\]:,]', re.DOTALL)
# A string literal (kept) or a run of JSON white space (dropped).
_SPACE = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)|[ \t\r\n]+', re.DOTALL)
_WHITESPACE = b" \t\r\n"


class RequestCertificateNotAllowed(TsbError):
    """402: the request's signing key is missing, unreadable or not whitelisted."""

    code = 402


class RequestSignatureInvalid(TsbError):
    """403: the request's signature is missing or does not verify."""

    code = 403


def compact(raw: bytes) -> bytes:
    """``raw`` JSON without the white space outside strings: Go's ``json.Compact`` (no escaping)."""
    return _SPACE.sub(lambda match: match[0] if match[0][:1] == b'"' else b"", raw)


def member_value(body: bytes, name: str) -> bytes | None:
    """The bytes of the value of the top-level member ``name`` of the JSON object ``body``, as sent
    (without surrounding white space); None when the member is absent or appears more than once."""
    found: list[bytes] = []
    depth, expect_key, current, start = 0, False, None, 0
    for match in _TOKENS.finditer(body):
        token = match[0]
        if token[:1] == b'"':
            if depth == 1 and expect_key:
                try:
                    current = json.loads(token)
                except ValueError:
                    return None
                expect_key = False
            continue
        if token in (b"{", b"["):
            depth += 1
            expect_key = depth == 1
        elif token in (b"}", b"]") or (token == b"," and depth == 1):
            if depth == 1 and current == name:
                found.append(body[start:match.start()].strip(_WHITESPACE))
            if depth == 1:
                current, expect_key = None, token == b","
            if token != b",":
                depth -= 1
        elif token == b":" and depth == 1:
            start = match.end()
    return found[0] if len(found) == 1 else None


def spki_fingerprint(public_key_der: bytes) -> str:
    """SHA-256 (lower-case hex) of a DER SubjectPublicKeyInfo: how a whitelisted key is named."""
    return hashlib.sha256(public_key_der).hexdigest()


@dataclass(frozen=True, slots=True)
class RequestSignature:
    """``SignatureDto`` as received (each part may be missing)."""

    signature: bytes | None
    digest_algorithm: str | None
    public_key: bytes | None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """An asynchronous request as the rule sees it: the envelope's inner member (``envelope``, e.g.
    ``signRequest``), its bytes as sent (None: not found once in the body) and the signature."""

    envelope: str
    content: bytes | None
    signature: RequestSignature | None


class RequestSignatureRule:
    """The whitelist and the check (module text). ``fingerprints``: SHA-256 fingerprints of the
    whitelisted keys' DER SubjectPublicKeyInfo; empty, the rule is off."""

    def __init__(self, fingerprints: Iterable[str] = ()) -> None:
        self._fingerprints = frozenset(f.lower() for f in fingerprints)

    @property
    def enabled(self) -> bool:
        return bool(self._fingerprints)

    def check(self, request: SignedRequest) -> None:
        """Nothing when the rule is off or the request is signed by a whitelisted key; else 402 / 403."""
        if not self.enabled:
            return
        signature = request.signature
        if signature is None or not signature.signature:
            raise RequestSignatureInvalid(f"{FIELD}.signature is missing: this gateway accepts asynchronous "
                                          "requests signed by a whitelisted application key only")
        public_key = self._whitelisted(signature.public_key)
        digest = DIGESTS.get(signature.digest_algorithm or "")
        if digest is None:
            raise RequestSignatureInvalid(f"{FIELD}.digestAlgorithm must be one of {', '.join(DIGESTS)}, "
                                          f"not {signature.digest_algorithm!r}")
        if request.content is None:
            raise RequestSignatureInvalid(f"the body must hold '{request.envelope}' exactly once for "
                                          f"{FIELD} to be checked")
        try:
            _verify(public_key, signature.signature, compact(request.content), digest())
        except InvalidSignature:
            raise RequestSignatureInvalid(f"{FIELD}.signature does not verify over '{request.envelope}' "
                                          "(the compact JSON of the request as sent)") from None

    def _whitelisted(self, public_key_der: bytes | None) -> serialization.PublicKeyTypes:
        if not public_key_der:
            raise RequestCertificateNotAllowed(f"{FIELD}.publicKey is missing")
        if spki_fingerprint(public_key_der) not in self._fingerprints:
            raise RequestCertificateNotAllowed(f"{FIELD}.publicKey is not a whitelisted application key "
                                               f"(SHA-256 {spki_fingerprint(public_key_der)})")
        try:
            return serialization.load_der_public_key(public_key_der)
        except (ValueError, UnsupportedAlgorithm):
            raise RequestCertificateNotAllowed(f"{FIELD}.publicKey is not a DER SubjectPublicKeyInfo") from None


def _verify(public_key: serialization.PublicKeyTypes, signature: bytes, message: bytes,
            digest: hashes.HashAlgorithm) -> None:
    """Raises InvalidSignature unless ``signature`` is ``public_key``'s over ``message``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, message, padding.PKCS1v15(), digest)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, message, ec.ECDSA(digest))
    elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        public_key.verify(signature, message)
    else:
        raise RequestCertificateNotAllowed(f"{FIELD}.publicKey: a {type(public_key).__name__} cannot sign requests")
