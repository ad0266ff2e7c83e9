"""JWT bearer tokens (``Authorization: Bearer <jwt>``): verification and issuing.

Claim schema (the TSB's is not public, reference §2 GAP; this one is hsmgate's)::

    sub        string, required   the caller; written to the audit log
    partition  string, required   the one partition the caller may use
    roles      [string], required TSB role names: keyManagement, keyOperation, approver, service,
                                  approverKeyManagement (unknown names make the token invalid)
    iss        string, required   must equal HSMGATE_JWT_ISSUER
    aud        string or [string], required, must contain HSMGATE_JWT_AUDIENCE
    exp        NumericDate, required; nbf and iat optional, checked when present
                                  (HSMGATE_JWT_LEEWAY_SECONDS of clock skew allowed). Each must be
                                  a JSON number: ``"exp": "1700000000"`` is refused (PyJWT would
                                  convert it). exp - iat (exp - now without iat) must not exceed
                                  HSMGATE_JWT_MAX_LIFETIME (default 24 h).

Algorithms: HS256, RS256, ES256 (P-256) and EdDSA (Ed25519, Ed448). **Each configured key is bound
to exactly one algorithm, derived from the key itself** (an RSA key verifies RS256 only, an HS256
secret HS256 only); the token's ``alg`` header merely selects among those keys (RFC 8725 §3.1). So
``alg: none`` finds no key, and an HS256 token "signed" with an RSA public key as the HMAC secret
(algorithm confusion) is checked against the configured HS256 secrets only — never against a
public key. A token with a ``kid`` is checked against the key with that id (RFC 7638 thumbprint
for PEM keys, the JWKS ``kid`` otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from hsmgate.auth.errors import InvalidAccessToken
from hsmgate.auth.roles import Role
from hsmgate.domain.text import character_name, unsafe_character
from hsmgate.settings import ConfigError, Settings

#: Algorithms hsmgate accepts and issues.
ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")
#: Longest token looked at (bytes of the header value).
MAX_TOKEN_LENGTH = 16384
MIN_RSA_BITS = 2048
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")
#: Claims that are NumericDates (RFC 7519 §2): JSON numbers, never strings.
TIME_CLAIMS = ("exp", "nbf", "iat")


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A key and the one algorithm it verifies. ``kid`` None: matches tokens with any kid."""

    algorithm: str
    key: Any  # a cryptography public key, or the HS256 secret as bytes
    kid: str | None
    source: str  # where it was configured, for error messages


@dataclass(frozen=True, slots=True)
class Claims:
    """The verified claims hsmgate uses."""

    subject: str
    partition: str
    roles: frozenset[Role]
    issuer: str
    expires_at: int


def algorithm_for(key: Any, source: str) -> str:
    """The one JWS algorithm a key is used with; ConfigError for keys hsmgate does not accept."""
    if isinstance(key, bytes):
        return "HS256"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"{source}: RSA keys for JWT must have at least {MIN_RSA_BITS} bits")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError(f"{source}: EC keys for JWT must be on P-256 (ES256), not {key.curve.name}")
        return "ES256"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey | ed448.Ed448PublicKey
                  | ed448.Ed448PrivateKey):
        return "EdDSA"
    raise ConfigError(f"{source}: unsupported key type {type(key).__name__} (use RSA, P-256, Ed25519 or Ed448)")


def thumbprint(public_key: Any) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key: the ``kid`` hsmgate uses."""
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk, members = RSAAlgorithm.to_jwk(public_key, as_dict=True), ("e", "kty", "n")
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        jwk, members = ECAlgorithm.to_jwk(public_key, as_dict=True), ("crv", "kty", "x", "y")
    else:
        jwk, members = OKPAlgorithm.to_jwk(public_key, as_dict=True), ("crv", "kty", "x")
    canonical = json.dumps({m: jwk[m] for m in members}, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_public_key_file(path: Path) -> Any:
    """A PEM public key or certificate."""
    data = _read(path, "HSMGATE_JWT_PUBLIC_KEYS file")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data).public_key()
        return serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM public key or certificate ({exc})") from None


def load_signing_key(path: Path) -> Any:
    """An unencrypted PEM private key (``openssl genpkey``)."""
    data = _read(path, "HSMGATE_JWT_SIGNING_KEY")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted PEM private key ({exc})") from None


def load_jwks(path: Path) -> list[VerificationKey]:
    """The signature keys of a JWKS file (``{"keys": [...]}``); keys with ``use`` other than
    ``sig`` are skipped. A key's ``alg``, when given, must be the one its type implies."""
    try:
        document = json.loads(_read(path, "HSMGATE_JWT_JWKS_FILE"))
        entries = document["keys"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not a JWKS document ({{\"keys\": [...]}})") from None
    keys = []
    for number, entry in enumerate(entries, start=1):
        source = f"{path} key {number}"
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK.from_dict(entry).key
        except jwt.PyJWTError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
                      | ed448.Ed448PrivateKey):
            key = key.public_key()  # a JWKS should hold public keys; never keep private halves around
        algorithm = algorithm_for(key, source)
        if "alg" in entry and entry["alg"] != algorithm:
            raise ConfigError(f"{source}: alg {entry['alg']!r} does not match its key type ({algorithm})")
        if algorithm == "HS256" and len(key) < 32:
            raise ConfigError(f"{source}: HS256 keys must be at least 32 bytes")
        keys.append(VerificationKey(algorithm, key, entry.get("kid"), source))
    return keys


def verification_keys(settings: Settings) -> list[VerificationKey]:
    """Every key that verifies tokens: HS256 secret, PEM files, JWKS, and the signing key's public half."""
    keys: list[VerificationKey] = []
    if settings.jwt_hs256_secret is not None:
        keys.append(VerificationKey("HS256", settings.jwt_hs256_secret.get_secret_value().encode(), None,
                                    "HSMGATE_JWT_HS256_SECRET"))
    for path in settings.jwt_public_keys:
        key = load_public_key_file(path)
        keys.append(VerificationKey(algorithm_for(key, str(path)), key, thumbprint(key), str(path)))
    if settings.jwt_jwks_file is not None:
        keys.extend(load_jwks(settings.jwt_jwks_file))
    if settings.jwt_signing_key is not None:
        public = load_signing_key(settings.jwt_signing_key).public_key()
        keys.append(VerificationKey(algorithm_for(public, str(settings.jwt_signing_key)), public,
                                    thumbprint(public), str(settings.jwt_signing_key)))
    return keys


class TokenVerifier:
    """Verifies bearer tokens and returns their :class:`Claims`; raises InvalidAccessToken (617)."""

    def __init__(self, keys: Iterable[VerificationKey], *, issuer: str, audience: str, leeway: int = 30,
                 max_lifetime: int = 86400) -> None:
        self._keys = list(keys)
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.max_lifetime = max_lifetime

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        assert settings.jwt_issuer and settings.jwt_audience  # enforced by Settings
        return cls(verification_keys(settings), issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                   leeway=settings.jwt_leeway_seconds, max_lifetime=settings.jwt_max_lifetime)

    def verify(self, token: str) -> Claims:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidAccessToken("the bearer token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidAccessToken("the bearer token is not a JWT") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALGORITHMS:
            raise InvalidAccessToken(f"JWT algorithm {algorithm!r} is not accepted (use one of {', '.join(ALGORITHMS)})")
        candidates = [k for k in self._keys if k.algorithm == algorithm and (kid is None or k.kid in (None, kid))]
        if not candidates:
            raise InvalidAccessToken(f"no key configured verifies {algorithm} tokens"
                                     + (f" with kid {kid!r}" if kid is not None else ""))
        for key in candidates:
            try:
                payload = jwt.decode(
                    token, key.key, algorithms=[key.algorithm], issuer=self.issuer, audience=self.audience,
                    leeway=self.leeway, options={"require": list(REQUIRED_CLAIMS)},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise InvalidAccessToken("the bearer token has expired") from None
            except jwt.ImmatureSignatureError:
                raise InvalidAccessToken("the bearer token is not valid yet (nbf/iat)") from None
            except jwt.InvalidAudienceError:
                raise InvalidAccessToken("the bearer token is not meant for this service (aud)") from None
            except jwt.InvalidIssuerError:
                raise InvalidAccessToken("the bearer token has the wrong issuer (iss)") from None
            except jwt.MissingRequiredClaimError as exc:
                raise InvalidAccessToken(f"the bearer token lacks the '{exc.claim}' claim") from None
            except jwt.PyJWTError as exc:
                raise InvalidAccessToken(f"the bearer token is invalid: {exc}") from None
            self._check_times(payload)
            return _claims(payload)
        raise InvalidAccessToken("the bearer token's signature does not verify")

    def _check_times(self, payload: dict[str, Any]) -> None:
        """NumericDate claims are JSON numbers, and the token's lifetime is within the cap."""
        for claim in TIME_CLAIMS:
            value = payload.get(claim)
            if claim in payload and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidAccessToken(f"the '{claim}' claim must be a NumericDate (a JSON number of seconds), "
                                         f"not {type(value).__name__}")
        expires, issued = payload["exp"], payload.get("iat")
        lifetime = expires - issued if issued is not None else expires - time.time() - self.leeway
        if lifetime > self.max_lifetime:
            since = "iat" if issued is not None else "now"
            raise InvalidAccessToken(f"the bearer token is valid for {int(lifetime)} s from {since}; this service "
                                     f"accepts at most {self.max_lifetime} s (HSMGATE_JWT_MAX_LIFETIME)")


def _claims(payload: dict[str, Any]) -> Claims:
    subject, partition, roles = payload.get("sub"), payload.get("partition"), payload.get("roles")
    if not isinstance(subject, str) or not subject or len(subject) > 256:
        raise InvalidAccessToken("the 'sub' claim must be a string of 1 to 256 characters")
    if not isinstance(partition, str) or not partition:
        raise InvalidAccessToken("the 'partition' claim must be a non-empty string")
    for claim, value in (("sub", subject), ("partition", partition)):
        char = unsafe_character(value)
        if char is not None:  # it names the caller in logs and in the audit log (domain/text.py)
            raise InvalidAccessToken(f"the '{claim}' claim must not contain control or format characters "
                                     f"(found {character_name(char)})")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidAccessToken("the 'roles' claim must be a list of role names")
    try:
        parsed = frozenset(Role(r) for r in roles)
    except ValueError:
        unknown = sorted(set(roles) - {r.value for r in Role})
        raise InvalidAccessToken(f"unknown role(s) in the 'roles' claim: {', '.join(unknown)}") from None
    return Claims(subject, partition, parsed, str(payload["iss"]), int(payload["exp"]))


class TokenIssuer:
    """Mints tokens with the configured signing key (``hsmgate token issue``)."""

    def __init__(self, key: Any, *, issuer: str, audience: str) -> None:
        self._key = key
        self.algorithm = algorithm_for(key, "signing key")
        self.kid = None if isinstance(key, bytes) else thumbprint(key.public_key())
        self.issuer = issuer
        self.audience = audience

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenIssuer:
        if not (settings.jwt_issuer and settings.jwt_audience):
            raise ConfigError("HSMGATE_JWT_ISSUER and HSMGATE_JWT_AUDIENCE must be set to issue tokens")
        if settings.jwt_signing_key is not None:
            key: Any = load_signing_key(settings.jwt_signing_key)
        elif settings.jwt_hs256_secret is not None:
            key = settings.jwt_hs256_secret.get_secret_value().encode()
        else:
            raise ConfigError("no signing key: set HSMGATE_JWT_SIGNING_KEY (PEM private key) or HSMGATE_JWT_HS256_SECRET")
        return cls(key, issuer=settings.jwt_issuer, audience=settings.jwt_audience)

    def issue(self, *, subject: str, partition: str, roles: Iterable[Role], ttl: timedelta,
              now: int | None = None) -> str:
        issued = int(time.time()) if now is None else now
        claims = {
            "sub": subject, "partition": partition, "roles": sorted(str(r) for r in roles),
            "iss": self.issuer, "aud": self.audience,
            "iat": issued, "nbf": issued, "exp": issued + int(ttl.total_seconds()),
        }
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)


def parse_ttl(text: str) -> timedelta:
    """``90`` (seconds), ``15m``, ``8h``, ``7d`` → timedelta; ValueError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"invalid duration {text!r}: use e.g. 900, 15m, 8h or 7d")
    return timedelta(seconds=int(number) * units[unit])

