"""A signing process of the LMS crash test: signs with one LMS key of a shared soft-token database
and appends ``q message signature-hex END`` to its output file, flushed and fsynced, once a signature
is *released* (returned by the token). Run: python -m tests.hsm.stateful_and_bls.lms_worker DB MASTER_KEY_HEX LABEL
NAME COUNT OUT."""

from __future__ import annotations

import os
import sys

from hsmgate.hsm.base import SignMechanism, SignScheme
from hsmgate.hsm.soft import SoftPartition
from hsmgate.store.database import Database
from hsmgate.store.soft_keys import SoftKeyRepository

PARTITION = "crash"


def main(db_path: str, master_key: str, label: str, name: str, count: int, out: str) -> None:
    db = Database(f"sqlite:///{db_path}")
    partition = SoftPartition(PARTITION, repository=SoftKeyRepository(db, PARTITION),
                              master_key=bytes.fromhex(master_key))
    mechanism = SignMechanism(SignScheme.HSS_LMS)
    with open(out, "a", encoding="ascii") as sink:
        for n in range(count):
            message = f"{name}-{n}"
            signature = partition.sign(label, mechanism, message.encode())
            sink.write(f"{int.from_bytes(signature[4:8], 'big')} {message} {signature.hex()} END\n")  # END: complete
            sink.flush()
            os.fsync(sink.fileno())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
