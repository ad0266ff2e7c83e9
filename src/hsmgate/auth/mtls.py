"""Client certificates (mTLS): TLS options for uvicorn, the peer certificate in the ASGI scope,
and the mapping of a certificate to an identity.

uvicorn (0.54, measured in ``tests/auth/test_mtls.py``) verifies client certificates during the
handshake (``ssl_cert_reqs``, ``ssl_ca_certs``) but puts nothing about TLS into the ASGI scope (the
ASGI TLS extension is not implemented). The certificate is however on the transport when the
connection is made: ``transport.get_extra_info("ssl_object").getpeercert(binary_form=True)``.
:class:`TlsScopeProtocol` reads it there once per connection and adds the ASGI TLS extension
(``scope["extensions"]["tls"]``, ``client_cert_chain`` as PEM) to every request on that connection;
if a later uvicorn fills the extension itself, its value is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from hsmgate.auth.errors import MissingLoginInformation
from hsmgate.auth.roles import Role
from hsmgate.domain.text import character_name, unsafe_character
from hsmgate.settings import ConfigError, MtlsIdentity, Settings

#: uvicorn's ``http`` option: the HTTP protocol class that adds the TLS extension.
TLS_PROTOCOL = "hsmgate.auth.mtls:TlsScopeProtocol"

CERT_REQS = {"need": ssl.CERT_REQUIRED, "want": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def uvicorn_tls_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run``; empty without HSMGATE_TLS_CERT."""
    if settings.tls_cert is None:
        return {}
    options: dict[str, Any] = {
        "ssl_certfile": str(settings.tls_cert),
        "ssl_keyfile": str(settings.tls_key) if settings.tls_key else None,
        "http": TLS_PROTOCOL,
    }
    if settings.mtls_enabled:
        options["ssl_ca_certs"] = str(settings.tls_client_ca)
        options["ssl_cert_reqs"] = CERT_REQS[settings.tls_client_auth]
    return options


def tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """The ASGI TLS extension (spec 0.2) for one connection."""
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    cipher = ssl_object.cipher()
    return {"server_cert": None, "client_cert_chain": chain, "client_cert_name": None, "client_cert_error": None,
            "tls_version": ssl_object.version(), "cipher_suite": cipher[0] if cipher else None}


class _WithTlsExtension:
    """The application, called with the connection's TLS extension in the scope."""

    __slots__ = ("app", "extension")

    def __init__(self, app: Any, extension: dict[str, Any]) -> None:
        self.app = app
        self.extension = extension

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        extensions = scope.setdefault("extensions", {})
        extensions.setdefault("tls", self.extension)
        await self.app(scope, receive, send)


class TlsScopeProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, plus the ASGI TLS extension on TLS connections."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.app = _WithTlsExtension(self.app, tls_extension(ssl_object))


def client_certificate(scope: Mapping[str, Any]) -> str | None:
    """The PEM client certificate of the request's connection, if one was presented and verified."""
    tls = (scope.get("extensions") or {}).get("tls")
    if not tls:
        return None
    chain = tls.get("client_cert_chain") or ()
    return chain[0] if chain else None


@dataclass(frozen=True, slots=True)
class CertificateIdentity:
    """A client certificate as a caller. ``roles`` None: the certificate is not mapped."""

    subject: str  # RFC 4514 DN
    fingerprint: str  # sha256:<hex> of the DER certificate
    partition: str | None
    roles: frozenset[Role] | None


def normalise_dn(dn: str) -> str:
    """An RFC 4514 DN in cryptography's canonical spelling; spaces around the separators, as
    ``openssl x509 -subject`` prints them, are tolerated (``CN = a, O = b`` → ``CN=a,O=b``)."""
    parts = [part.strip() for part in re.split(r"(?<!\\),", dn)]
    tidy = ",".join(re.sub(r"^([^=]+?)\s*=\s*", r"\1=", part) for part in parts)
    try:
        return x509.Name.from_rfc4514_string(tidy).rfc4514_string()
    except ValueError as exc:
        raise ConfigError(f"HSMGATE_MTLS_IDENTITIES: {dn!r} is not an RFC 4514 name ({exc})") from None


class CertificateMapper:
    """Looks a certificate up in HSMGATE_MTLS_IDENTITIES: by ``sha256:<fingerprint>`` first, then by
    subject DN, then the ``*`` entry (any certificate the client CA vouches for)."""

    def __init__(self, identities: Mapping[str, MtlsIdentity]) -> None:
        self._by_key: dict[str, MtlsIdentity] = {}
        for key, identity in identities.items():
            if key == "*":
                normalised = key
            elif key.lower().startswith("sha256:"):  # openssl prints AB:CD:…; accept that too
                normalised = "sha256:" + key[len("sha256:"):].replace(":", "").lower()
            else:
                normalised = normalise_dn(key)
            self._by_key[normalised] = identity
        self.identify = lru_cache(maxsize=256)(self._identify)

    def _identify(self, pem: str) -> CertificateIdentity:
        """Raises MissingLoginInformation (618, 401) for a subject that cannot name a caller: RFC
        4514 escapes NUL but leaves line feeds, escapes and bidi overrides as they are, and the
        subject is the principal written to logs and to the audit log (domain/text.py)."""
        certificate = x509.load_pem_x509_certificate(pem.encode())
        subject = certificate.subject.rfc4514_string()
        char = unsafe_character(subject)
        if char is not None:
            raise MissingLoginInformation("the client certificate's subject contains control or format characters "
                                          f"(found {character_name(char)}): it cannot name a caller")
        fingerprint = "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
        identity = self._by_key.get(fingerprint) or self._by_key.get(subject) or self._by_key.get("*")
        if identity is None:
            return CertificateIdentity(subject, fingerprint, None, None)
        return CertificateIdentity(subject, fingerprint, identity.partition, frozenset(Role(role) for role in identity.roles))


def check_tls_files(settings: Settings) -> None:
    """Load the TLS files once, so that a bad file fails ``serve`` with one line (ConfigError)."""
    if settings.tls_cert is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key) if settings.tls_key else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use HSMGATE_TLS_CERT/HSMGATE_TLS_KEY ({settings.tls_cert}): {exc}") from None
    if settings.tls_client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(settings.tls_client_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use HSMGATE_TLS_CLIENT_CA {settings.tls_client_ca}: {exc}") from None
