"""The credentials of one request → the :class:`Principal` that may call the matched route.

Rules (docs/security.md):

* Open routes (:data:`~hsmgate.auth.roles.OPEN_PATHS`) need nothing. In dev mode *without* any
  authentication method configured every caller is the developer with every role; as soon as a
  method is configured it is enforced, dev mode or not.
* Every credential the request presents for a configured method must be valid: a client
  certificate mapped in HSMGATE_MTLS_IDENTITIES, a bearer token, an X-API-KEY. An invalid one is
  refused even when another one is fine. (A credential for a method that is not configured — an
  X-API-KEY header when no API keys are set — is ignored, as the TSB does with API keys disabled.)
* Every presented credential must allow the route on its own (the caller's roles are the
  *intersection*): a token for ``keyOperation`` plus a key-management API key cannot create keys.
* The partition is the one named by the token or the certificate mapping (they must agree), else
  HSMGATE_PARTITION. API keys carry no partition: they give access to HSMGATE_PARTITION.
* A client certificate that is not mapped only authenticates the TLS connection; it is no
  credential for the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsmgate.auth.api_keys import ApiKeyVerifier
from hsmgate.auth.errors import (
    InvalidAccessToken,
    InvalidApiKey,
    MissingAccessToken,
    MissingApiKey,
    MissingLoginInformation,
    NotAllowed,
)
from hsmgate.auth.jwt_tokens import TokenVerifier
from hsmgate.auth.mtls import CertificateMapper
from hsmgate.auth.roles import Role, RoleTable
from hsmgate.domain.principal import Principal
from hsmgate.settings import Settings

ALL_ROLES = frozenset(str(r) for r in Role)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presents: X-API-KEY, the bearer token, the PEM client certificate."""

    api_key: str | None = None
    bearer_token: str | None = None
    client_certificate: str | None = None


@dataclass(frozen=True, slots=True)
class _Grant:
    method: str
    subject: str
    partition: str | None
    roles: frozenset[Role]


class Authenticator:
    """Built once per application from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.default_partition = settings.partition
        self.methods = settings.auth_methods
        self.open_dev_mode = settings.dev and not self.methods
        self.roles = RoleTable(lenient=settings.lenient_roles)
        self.api_keys = ApiKeyVerifier(settings.api_keys)
        self.tokens = TokenVerifier.from_settings(settings) if settings.jwt_enabled else None
        self.certificates = CertificateMapper(settings.mtls_identities) if settings.mtls_enabled else None
        self._developer = Principal(subject="developer", partition=settings.partition, roles=ALL_ROLES)

    def authenticate(self, route: str, credentials: Credentials) -> Principal | None:
        """The principal allowed to call ``route`` (a route template); None for open routes.
        Raises an :mod:`hsmgate.auth.errors` TsbError otherwise."""
        if self.roles.is_open(route):
            return None
        if self.open_dev_mode:
            return self._developer
        grants, unmapped = self._grants(credentials)
        if not grants:
            raise self._missing(unmapped)
        allowed = self.roles.roles_for(route)
        if not allowed:
            raise NotAllowed(f"no role may call {route}")
        for grant in grants:
            if not grant.roles & allowed:
                if grant.method == "api-key":  # the TSB answers a key of another role like a wrong key
                    raise InvalidApiKey(f"the API key is not valid for {route}")
                needed = " or ".join(sorted(allowed))
                raise NotAllowed(f"'{grant.subject}' lacks the role {needed} needed for {route}")
        partitions = {g.partition for g in grants if g.partition is not None}
        if len(partitions) > 1:
            raise InvalidAccessToken("the credentials of this request name different partitions")
        roles = frozenset.intersection(*(g.roles for g in grants)) & allowed
        return Principal(
            subject=grants[0].subject,
            partition=partitions.pop() if partitions else self.default_partition,
            authenticated_by="+".join(g.method for g in grants),
            roles=frozenset(str(r) for r in roles),
        )

    def _grants(self, credentials: Credentials) -> tuple[list[_Grant], str | None]:
        grants: list[_Grant] = []
        unmapped = None
        if self.tokens is not None and credentials.bearer_token is not None:
            claims = self.tokens.verify(credentials.bearer_token)
            grants.append(_Grant("jwt", claims.subject, claims.partition, claims.roles))
        if self.certificates is not None and credentials.client_certificate is not None:
            identity = self.certificates.identify(credentials.client_certificate)
            if identity.roles is None:
                unmapped = identity.subject
            else:
                grants.append(_Grant("mtls", identity.subject, identity.partition, identity.roles))
        if self.api_keys.enabled and credentials.api_key is not None:
            match = self.api_keys.identify(credentials.api_key)
            if match is None:
                raise InvalidApiKey("invalid API key")
            grants.append(_Grant("api-key", match.subject, None, match.roles))
        return grants, unmapped

    def _missing(self, unmapped_certificate: str | None) -> Exception:
        if unmapped_certificate is not None:
            return MissingLoginInformation(
                f"client certificate '{unmapped_certificate}' is not mapped in HSMGATE_MTLS_IDENTITIES")
        accepted = [name for name, on in (("an X-API-KEY header", self.api_keys.enabled),
                                          ("a bearer token", self.tokens is not None),
                                          ("a client certificate", self.certificates is not None)) if on]
        message = "missing credentials: send " + " or ".join(accepted)
        if self.api_keys.enabled:
            return MissingApiKey(message)
        if self.tokens is not None:
            return MissingAccessToken(message)
        return MissingLoginInformation(message)
