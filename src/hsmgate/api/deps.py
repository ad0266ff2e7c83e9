"""Request dependencies as named ``Annotated`` aliases.

Authentication seam. :func:`authorize` runs for every route (it is an application-wide
dependency): it hands the request's credentials — X-API-KEY, the bearer token, the client
certificate of the TLS connection — and the matched route to the :class:`Authenticator`, which
returns the principal or raises a TSB error (401 / 403). :func:`current_principal` gives routes
that principal. In dev mode without any authentication method every caller is the developer.

The dependencies are ``async``: none of them blocks, and a sync dependency would cost a
threadpool hop per request (bench/results/design-measurements.md).

Routes get the services of the principal's partition (:data:`ServicesDep`) and the
:class:`hsmgate.domain.key_use.Caller` (:data:`CallerDep`: principal and request id) that every
domain call takes, so the domain records it in the audit log.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from hsmgate.api.credential_headers import SingleApiKeyHeader, SingleBearer
from hsmgate.api.request_id import request_id
from hsmgate.auth.authenticator import Credentials
from hsmgate.auth.errors import NotAllowed
from hsmgate.auth.mtls import client_certificate
from hsmgate.domain.audit.recording import Actor, RequestAudit
from hsmgate.domain.errors import TsbError
from hsmgate.domain.gateway import Gateway, PartitionServices
from hsmgate.domain.key_use import Caller
from hsmgate.domain.principal import Principal
from hsmgate.settings import Settings

log = logging.getLogger("hsmgate.auth")

api_key_scheme = SingleApiKeyHeader(name="X-API-KEY", auto_error=False, scheme_name="apiKey",
                                    description="API key of a TSB role (keyManagement, keyOperation, service, …)")
bearer_scheme = SingleBearer(auto_error=False, scheme_name="bearerJwt", bearerFormat="JWT",
                             description="JWT with the claims sub, partition, roles, iss, aud, exp")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


async def authorize(
    request: Request,
    api_key: Annotated[str | None, Security(api_key_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal | None:
    """The caller allowed on this route (None on open routes); raises 401 / 403 TSB errors."""
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    credentials = Credentials(api_key=api_key, bearer_token=bearer.credentials if bearer else None,
                              client_certificate=client_certificate(request.scope))
    try:
        return request.app.state.authenticator.authenticate(path, credentials)
    except TsbError as exc:  # logged, not audited: unauthenticated callers must not fill the audit table
        client = request.client.host if request.client else "-"
        log.warning("refused %s %s from %s (request %s): %s %s", request.method, path, client,
                    request_id(request.scope), exc.code, exc.message)
        raise


async def current_principal(principal: Annotated[Principal | None, Depends(authorize)]) -> Principal:
    if principal is None:  # an open route asked for a caller: refuse rather than guess one
        raise NotAllowed("this route has no authenticated caller")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def partition_services(gateway: GatewayDep, principal: PrincipalDep) -> PartitionServices:
    return gateway.services(principal.partition)


def caller_of(request: Request, principal: Principal) -> Caller:
    """The :class:`Caller` of a request: its principal and request id."""
    return Caller(Actor(principal=principal.subject, auth_method=principal.authenticated_by,
                        partition=principal.partition, request_id=request_id(request.scope)))


async def current_caller(request: Request, principal: PrincipalDep) -> Caller:
    return caller_of(request, principal)


ServicesDep = Annotated[PartitionServices, Depends(partition_services)]
CallerDep = Annotated[Caller, Depends(current_caller)]


async def request_audit(services: ServicesDep, caller: CallerDep) -> RequestAudit | None:
    """Where the SKA request lifecycle records this caller's steps (None: audit off)."""
    return services.key_use.recorder(caller)


AuditDep = Annotated[RequestAudit | None, Depends(request_audit)]
