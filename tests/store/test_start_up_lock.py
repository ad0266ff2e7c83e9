"""``Database.start_up_lock``: processes starting on one database set up a partition one at a time
(bootstrap holds it while binding the partition and creating the attestation key). Two ``Database``
objects on one database stand for two processes: the second waits until the first lets go."""

from __future__ import annotations

import threading
import time

from hsmgate.store.database import Database


def test_a_second_holder_waits_until_the_first_lets_go(database: Database, database_url: str) -> None:
    other = Database(database_url)
    entered = threading.Event()
    try:
        with database.start_up_lock():
            waiter = threading.Thread(target=lambda: _hold(other, entered), daemon=True)
            waiter.start()
            assert not entered.wait(0.5), "the second holder entered while the first held the lock"
        assert entered.wait(10), "the second holder did not enter after the first let go"
        waiter.join(10)
        # let go again: a third start is not kept waiting
        started = time.monotonic()
        with database.start_up_lock():
            pass
        assert time.monotonic() - started < 5
    finally:
        other.dispose()


def _hold(db: Database, entered: threading.Event) -> None:
    with db.start_up_lock():
        entered.set()
