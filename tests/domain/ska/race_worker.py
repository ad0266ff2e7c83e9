"""One of the OS processes of ``test_processes.py``'s race: opens the shared state database like an
hsmgate process does, waits until every racer is ready (a file per racer in a barrier directory), then runs the scheduler's pass over the due
requests until none is left, and prints (JSON) the requests *this* process executed and how many
times its backend signed with the SKA key.

Usage: python race_worker.py <data_dir> <master_key_b64> <key_label> <clock_offset_s> <barrier_dir> <racers>
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from hsmgate.bootstrap import build_gateway, build_ska
from hsmgate.domain.clock import ManualClock
from hsmgate.settings import Settings
from hsmgate.store.database import Database


def main() -> None:
    data_dir, master_key, label, offset, barrier, racers = sys.argv[1:7]
    settings = Settings(data_dir=data_dir, dev=True, backend="soft", master_key=master_key,  # type: ignore[arg-type]
                        audit_enabled=False)
    db = Database(settings.resolved_database_url)
    db.migrate()
    gateway = build_gateway(settings, db)
    clock = ManualClock()
    clock.advance(float(offset))
    build_ska(settings, db, gateway, clock)
    services = gateway.services(settings.partition)
    backend = services.partition  # the backend the key-use gate calls
    calls = {"sign": 0}
    original_sign, original_many = backend.sign, backend.sign_many

    def counting_sign(key_label: str, *args: Any, **kwargs: Any) -> bytes:
        if key_label == label:
            calls["sign"] += 1
        return original_sign(key_label, *args, **kwargs)

    def counting_many(key_label: str, mechanism: Any, items: Any, **kwargs: Any) -> Any:
        if key_label == label:
            calls["sign"] += len(items)
        return original_many(key_label, mechanism, items, **kwargs)

    backend.sign = counting_sign  # type: ignore[method-assign]
    backend.sign_many = counting_many  # type: ignore[method-assign]
    requests = services.ska.requests
    (Path(barrier) / f"ready-{os.getpid()}").touch()
    give_up = time.monotonic() + 60
    while len(list(Path(barrier).glob("ready-*"))) < int(racers) and time.monotonic() < give_up:
        time.sleep(0.001)
    executed: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        due = requests.repository.due(requests.now())
        if not due:
            break
        for request_id in due:
            if requests.advance(request_id):
                executed.append(request_id)
    print(json.dumps({"executed": executed, "sign_calls": calls["sign"]}))
    gateway.close()
    db.dispose()


if __name__ == "__main__":
    main()
