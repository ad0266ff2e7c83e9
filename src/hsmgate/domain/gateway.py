"""The gateway: the partitions hsmgate serves and the services working on each."""

from __future__ import annotations

from dataclasses import dataclass

from hsmgate.domain import errors
from hsmgate.domain.audit.log import AuditLog
from hsmgate.domain.data_objects import DataObjectService
from hsmgate.domain.hsm_errors import translated
from hsmgate.domain.key_admin import KeyAdministration
from hsmgate.domain.key_use import KeyUse
from hsmgate.domain.keys import KeyService
from hsmgate.domain.ska.approvals import SkaServices
from hsmgate.hsm.base import Partition


@dataclass(slots=True)
class PartitionServices:
    """Everything that works on one partition, built once (``bootstrap.py``).

    Callers reach keys only through ``key_use`` (every operation on a key) and ``admin`` (key
    management); ``partition`` and ``keys`` are for hsmgate's own use (attestation, audit
    checkpoints, start-up), never handed a caller's key name directly."""

    partition: Partition
    keys: KeyService
    key_use: KeyUse
    admin: KeyAdministration
    data_objects: DataObjectService
    #: SKA requests, approvals and timestamps; None until ``bootstrap`` has built them
    ska: SkaServices | None = None
    #: the partition's audit chain as the service role reads it; None when auditing is off
    audit_log: AuditLog | None = None

    def require_audit_log(self) -> AuditLog:
        """The partition's log, or 611 when auditing is off (HSMGATE_AUDIT_ENABLED=false)."""
        if self.audit_log is None:
            raise errors.UnsupportedOperation("the partition log is the audit chain, and auditing is off "
                                              "(HSMGATE_AUDIT_ENABLED=false)")
        return self.audit_log

    def require_ska(self) -> SkaServices:
        """The SKA services, or 611 where they are not available."""
        if self.ska is None:
            raise errors.UnsupportedOperation("Smart Key Attributes are not available on this partition")
        return self.ska


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

    def check_backends(self) -> None:
        """Raise the TSB error (701, HTTP 503) of the first partition whose backend does not answer
        (one random byte from each: the load balancer's health check)."""
        for name, services in self._partitions.items():
            try:
                with translated():
                    services.partition.generate_random(1)
            except errors.TsbError as exc:
                raise type(exc)(f"partition {name}: {exc.message}", status=exc.status) from None

    def names(self) -> list[str]:
        return list(self._partitions)

    def close(self) -> None:
        for services in self._partitions.values():
            services.partition.close()
