"""The partition's timestamp key and the HSM timestamps of SKA requests (reference §6.2, §6.5).

At start-up every partition gets (if absent) an EC P-256 key named ``HSMGATE_TIMESTAMP_KEY_NAME``
(default ``timestamp-key``, the TSB's ``hsm.timestampKeyName``), made like the attestation key:
sign only, sensitive, never extractable, not destroyable. When a request whose rule has a timelock
or a timeout is created, hsmgate builds the HSM timestamp blob over the operation payload
(:class:`HsmTimestamp`: payload ‖ seconds since the epoch ‖ this key's name) and has the backend
sign the whole blob with SHA256withECDSA. The DER ECDSA signature goes into the task's level-4
``timestampSignature`` and, wrapped with its algorithm, into ``approvalToBeSigned``.
"""

from __future__ import annotations

from datetime import datetime

from hsmgate.domain.hsm_errors import translated
from hsmgate.domain.ska.approval_token import HsmTimestamp, Tag
from hsmgate.hsm.base import HashAlg, KeyAttributes, KeySpec, KeyType, Partition, SignMechanism, SignScheme
from hsmgate.store.key_metadata import KeyMetadataRepository

P256_OID = "1.2.840.10045.3.1.7"
TIMESTAMP_MECHANISM = SignMechanism(SignScheme.ECDSA, HashAlg.SHA256)
TIMESTAMP_SIGNATURE_ALGORITHM = "SHA256_WITH_ECDSA"


class TimestampService:
    """Creates the timestamp key of one partition and signs HSM timestamps with it."""

    def __init__(self, partition: Partition, metadata: KeyMetadataRepository, key_name: str) -> None:
        self.partition = partition
        self._metadata = metadata
        self.key_name = key_name

    def ensure(self, now: datetime) -> None:
        """Create the EC P-256 timestamp key if it is absent (safe when processes race)."""
        with translated():
            if self.key_name in self.partition.list_labels():
                return
            attributes = KeyAttributes(sign=True, sensitive=True, extractable=False, modifiable=False,
                                       destroyable=False)
            try:
                self.partition.generate(self.key_name, KeySpec(KeyType.EC, curve_oid=P256_OID), attributes)
            except Exception:  # another process may have won the race
                if self.key_name not in self.partition.list_labels():
                    raise
        self._metadata.record_creation(self.key_name, now.replace(microsecond=0))

    def stamp(self, moment: datetime, payload: bytes, payload_tag: Tag) -> tuple[HsmTimestamp, bytes]:
        """The HSM timestamp of ``payload`` at ``moment`` and its DER ECDSA signature."""
        stamp = HsmTimestamp.at(moment, payload, self.key_name, payload_tag)
        with translated():
            signature = self.partition.sign(self.key_name, TIMESTAMP_MECHANISM, stamp.encode())
        return stamp, signature

    def verify(self, blob: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this partition's timestamp signature over ``blob``."""
        with translated():
            return self.partition.verify(self.key_name, TIMESTAMP_MECHANISM, blob, signature)
