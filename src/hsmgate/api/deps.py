"""Request dependencies as named ``Annotated`` aliases.

``current_principal`` is the authentication seam: today only dev mode exists and every caller is
the anonymous developer bound to the configured partition; the authentication methods plug in here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hsmgate.domain.gateway import Gateway, PartitionServices
from hsmgate.domain.principal import Principal
from hsmgate.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def current_principal(request: Request) -> Principal:
    settings: Settings = request.app.state.settings
    return Principal(subject="developer", partition=settings.partition)


PrincipalDep = Annotated[Principal, Depends(current_principal)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def partition_services(gateway: GatewayDep, principal: PrincipalDep) -> PartitionServices:
    return gateway.services(principal.partition)


ServicesDep = Annotated[PartitionServices, Depends(partition_services)]
