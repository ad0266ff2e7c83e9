"""The gateway: the partitions hsmgate serves and the services working on each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hsmgate.domain import errors
from hsmgate.domain.keys import KeyService
from hsmgate.domain.passwords import PasswordService
from hsmgate.domain.signing import SigningService
from hsmgate.hsm.base import Partition
from hsmgate.store.certificates import CertificateRepository
from hsmgate.store.data_objects import DataObjectRepository
from hsmgate.store.key_metadata import KeyMetadataRepository
from hsmgate.store.wrapped_keys import WrappedKeyRepository


@dataclass(frozen=True, slots=True)
class OperationStores:
    """The state-database repositories (and settings) of one partition that the request-scoped
    services of ``operations``, ``key_transfer``, ``certificates``, ``timestamps`` and
    ``data_objects`` work with; routes build those services on the request's (audited) partition."""

    metadata: KeyMetadataRepository
    certificates: CertificateRepository
    data_objects: DataObjectRepository
    wrapped_keys: WrappedKeyRepository
    rfc_timestamp_key_name: str | None = None
    rfc_timestamp_policy: str = "2.999.3161.1"


@dataclass(slots=True)
class PartitionServices:
    """Everything that works on one partition."""

    partition: Partition
    keys: KeyService
    signing: SigningService
    passwords: PasswordService
    stores: OperationStores
    #: SKA requests, approvals and timestamps (``domain/requests.py``; issue 5); None: not available
    ska: Any = None
    #: The request's :class:`hsmgate.domain.audit.RequestAudit` (set per request by
    #: ``api/deps.partition_services``): ``services.audit.run(operation, label, call)`` records a call
    #: that the audited partition/keys/signing wrappers do not see. None outside a request.
    audit: Any = None


class Gateway:
    """Looks up a partition's services by name; a name it does not serve is reported as a
    missing key, so a caller learns nothing about other partitions."""

    def __init__(self) -> None:
        self._partitions: dict[str, PartitionServices] = {}

    def add(self, services: PartitionServices) -> None:
        self._partitions[services.partition.name] = services

    def services(self, partition: str) -> PartitionServices:
        try:
            return self._partitions[partition]
        except KeyError:
            raise errors.TsbError(f"partition '{partition}' is not served here", code=400, status=403) from None

    def names(self) -> list[str]:
        return list(self._partitions)

    def close(self) -> None:
        for services in self._partitions.values():
            services.partition.close()
