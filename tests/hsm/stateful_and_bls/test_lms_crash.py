"""No LMS one-time key is ever used twice — across processes, and when a process dies by SIGKILL.

Two processes sign with the same LMS key (height 10: 1,024 one-time keys) through one SQLite state
database. One of them is killed with SIGKILL while signing, twice, and restarted each time (a fresh
process: nothing survives but the database). Every signature a process released is recorded
(fsynced) with its leaf index q; at the end no q may appear twice, every signature must verify with
a second implementation (hsslms), and the store's next index must be past every released q (an
index reserved by a killed process and never released is burned, not reused). Bounded: 360
signatures, at most ~2 minutes.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import hsslms
import pytest
from asn1crypto import core

from hsmgate.hsm.base import KeyAttributes, KeySpec, KeyType
from hsmgate.hsm.soft import SoftPartition
from hsmgate.store.database import Database
from hsmgate.store.soft_keys import SoftKeyRepository
from tests.hsm.stateful_and_bls.lms_worker import PARTITION

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
DEADLINE = 150.0


def start(db: Path, master_key: str, label: str, name: str, count: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.hsm.stateful_and_bls.lms_worker", str(db), master_key, label,
                             name, str(count), str(out)], cwd=ROOT, stderr=subprocess.PIPE)


def lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.endswith(" END")]  # a killed write is partial


def wait_for_lines(path: Path, at_least: int, deadline: float) -> None:
    while len(lines(path)) < at_least:
        assert time.monotonic() < deadline, f"{path.name}: no progress"
        time.sleep(0.02)


def test_no_leaf_index_is_reused_across_processes_and_sigkill(tmp_path: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    db_path, master_key, label = tmp_path / "state.db", secrets.token_hex(32), "lms-crash"
    db = Database(f"sqlite:///{db_path}")
    db.migrate()
    repository = SoftKeyRepository(db, PARTITION)
    partition = SoftPartition(PARTITION, repository=repository, master_key=bytes.fromhex(master_key))
    info = partition.generate(label, KeySpec(KeyType.LMS, size=10), KeyAttributes(sign=True, verify=True))
    public = hsslms.HSS_Pub(bytes(core.OctetBitString.load(core.Sequence.load(info.public_key or b"")[1].dump()).native))

    steady, victim = tmp_path / "steady.out", tmp_path / "victim.out"
    workers = [start(db_path, master_key, label, "steady", 200, steady)]
    killed = 0
    for round_ in range(3):  # the victim: killed twice mid-run, the third run completes
        process = start(db_path, master_key, label, f"victim{round_}", 80 if round_ == 2 else 10_000, victim)
        if round_ == 2:
            workers.append(process)
            break
        wait_for_lines(victim, len(lines(victim)) + 25, deadline)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        killed += 1
    for process in workers:
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
        assert process.returncode == 0, process.stderr.read().decode() if process.stderr else ""
    assert killed == 2

    records = [line.split(" ")[:3] for line in lines(steady) + lines(victim)]
    indexes = [int(q) for q, _, _ in records]
    assert len(indexes) == len(set(indexes)), "a one-time key index was released twice"
    assert len(records) >= 200 + 80 + 50
    for q, message, signature in records:
        raw = bytes.fromhex(signature)
        assert int.from_bytes(raw[4:8], "big") == int(q)
        public.verify(message.encode(), raw)  # raises hsslms.INVALID otherwise
    committed = repository.next_index(label)
    assert committed is not None and committed > max(indexes)
    assert committed >= len(indexes)  # indexes reserved by a killed process are burned, never handed out again
    assert os.path.getsize(db_path) > 0
    db.dispose()
