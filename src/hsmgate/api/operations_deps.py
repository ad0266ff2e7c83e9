"""Request-scoped services of issue 4 (encrypt/wrap/HMAC, import/export, certificates, RFC 3161
timestamps, data objects) as named ``Annotated`` dependencies.

Each is built per request on the partition of :data:`ServicesDep` — the one the auth, audit and
SKA layers hand out — and on the partition's repositories in ``services.stores``; building them is
a few attribute assignments.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from hsmgate.api.deps import ServicesDep
from hsmgate.domain.certificates import CertificateService
from hsmgate.domain.data_objects import DataObjectService
from hsmgate.domain.key_transfer import KeyTransferService
from hsmgate.domain.operations import OperationsService
from hsmgate.domain.timestamps import RfcTimestampService


def operations_service(services: ServicesDep) -> OperationsService:
    stores = services.stores
    return OperationsService(services.partition, keys=services.keys, passwords=services.passwords,
                             metadata=stores.metadata, wrapped_keys=stores.wrapped_keys)


def key_transfer_service(services: ServicesDep) -> KeyTransferService:
    stores = services.stores
    return KeyTransferService(services.partition, keys=services.keys, passwords=services.passwords,
                              metadata=stores.metadata, certificates=stores.certificates)


def certificate_service(services: ServicesDep) -> CertificateService:
    return CertificateService(services.partition, passwords=services.passwords,
                              repository=services.stores.certificates)


def rfc_timestamp_service(certificates: Annotated[CertificateService, Depends(certificate_service)],
                          services: ServicesDep) -> RfcTimestampService:
    stores = services.stores
    return RfcTimestampService(services.partition, certificates=certificates,
                               key_name=stores.rfc_timestamp_key_name, policy_oid=stores.rfc_timestamp_policy)


def data_object_service(services: ServicesDep) -> DataObjectService:
    return DataObjectService(services.partition, services.stores.data_objects)


OperationsDep = Annotated[OperationsService, Depends(operations_service)]
KeyTransferDep = Annotated[KeyTransferService, Depends(key_transfer_service)]
CertificatesDep = Annotated[CertificateService, Depends(certificate_service)]
RfcTimestampsDep = Annotated[RfcTimestampService, Depends(rfc_timestamp_service)]
DataObjectsDep = Annotated[DataObjectService, Depends(data_object_service)]
