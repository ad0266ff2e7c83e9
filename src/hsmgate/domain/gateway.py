"""The gateway: the partitions hsmgate serves and the services working on each."""

from __future__ import annotations

from dataclasses import dataclass

from hsmgate.domain import errors
from hsmgate.domain.keys import KeyService
from hsmgate.domain.signing import SigningService
from hsmgate.hsm.base import Partition


@dataclass(slots=True)
class PartitionServices:
    """Everything that works on one partition."""

    partition: Partition
    keys: KeyService
    signing: SigningService


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
