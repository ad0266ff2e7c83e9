"""Results of SKA requests at rest: sealed in the state database, and erased when no longer needed.

``GET /v1/request/{id}`` hands out what an approved request produced: a signature, a certificate,
the label of an unwrapped key — and for a decrypt request the *plaintext*. Stored as it is, anyone
who can read the database (a backup, a replica, a stolen ``state.db``) reads every decrypted
secret, and anyone who can write it can plant a result (a signature the key never made).

**Sealing.** Every result is stored as ``sealed:v1:`` + base64(nonce ‖ AES-256-GCM ciphertext)
under a key derived with HKDF-SHA-256 from hsmgate's master key (``info`` =
``hsmgate/ska-request-result/v1``: the derived key is used for nothing else). The associated data
binds partition, request id and request kind, so a sealed result copied to another request does
not open. The master key is the one secret every hsmgate has, whatever the backend: with the soft
token it seals the keys too; with PKCS#11 (which has no soft master key) it is still created —
``<data-dir>/master.key``, 0600, or HSMGATE_MASTER_KEY — and already seals the PINs of database
partitions. Instances sharing one database must share it (as they must for those PINs).

**Erasure.** A TSB client polls ``GET /v1/request/{id}`` until EXECUTED and may read the result
more than once (a lost response is fetched again; the TSB's fetch-once switch of 2.1.0 is an
opt-in whose name is not public). So a result is not erased when read. It is erased (the column
set to NULL, the status stays EXECUTED, ``result`` is then null) when

* the client is done with it: ``DELETE /v1/request/{id}`` on an EXECUTED request, or
* it is older than the retention (HSMGATE_SKA_RESULT_RETENTION, default 24 h after execution):
  each scheduler pass erases those.

Results stored in plaintext by an older hsmgate are sealed when the scheduler starts
(:meth:`hsmgate.domain.ska.requests.RequestService.maintain_results`); afterwards a result that does
not open — tampered, planted in plaintext, or sealed under another master key — is refused with
an error (code 1), never handed out.
"""

from __future__ import annotations

import base64
import binascii
import os
from datetime import timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hsmgate.domain.errors import TsbError

#: Marks a sealed value; anything else in the column is plaintext from before sealing.
PREFIX = "sealed:v1:"
#: HKDF ``info``: the derived key seals request results and nothing else.
HKDF_INFO = b"hsmgate/ska-request-result/v1"
NONCE_BYTES = 12
#: How long a result stays fetchable after execution unless configured otherwise.
DEFAULT_RETENTION = timedelta(hours=24)


class ResultUnreadable(TsbError):
    """A stored result that does not open (500, code 1): it is not handed out."""

    code = 1

    def __init__(self, request_id: str) -> None:
        super().__init__(f"the stored result of request '{request_id}' does not open (tampered with, or sealed "
                         "under another master key); it is not returned", status=500)


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class ResultSealer:
    """Seals and opens the results of one hsmgate's SKA requests (see the module doc)."""

    def __init__(self, master_key: bytes, *, retention: timedelta = DEFAULT_RETENTION) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(master_key)
        self._aead = AESGCM(key)
        self.retention = retention

    @staticmethod
    def _aad(partition: str, request_id: str, kind: str) -> bytes:
        return b"\0".join(part.encode("utf-8") for part in (partition, request_id, kind))

    def seal(self, result: str, *, partition: str, request_id: str, kind: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, result.encode("utf-8"), self._aad(partition, request_id, kind))
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str | None, *, partition: str, request_id: str, kind: str) -> str | None:
        """The result, None when there is none (never stored, or erased); ResultUnreadable when
        ``stored`` is not a value this sealer made for this request."""
        if stored is None:
            return None
        if not is_sealed(stored):
            raise ResultUnreadable(request_id)
        try:
            raw = base64.b64decode(stored[len(PREFIX):], validate=True)
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(partition, request_id, kind))
        except (binascii.Error, ValueError, InvalidTag):
            raise ResultUnreadable(request_id) from None
        return plain.decode("utf-8")
