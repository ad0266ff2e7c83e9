"""Fixtures of the SKA tests: a live server per test module with a clock the tests move, and
approvers of each key type (made once per session: RSA key generation is slow)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hsmgate.domain.clock import ManualClock
from tests.domain.ska.helpers import Approver, ClockServer, clock_server


@pytest.fixture(scope="module")
def ska_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClockServer]:
    with clock_server(tmp_path_factory.mktemp("ska"), ManualClock()) as server:
        yield server


@pytest.fixture(scope="module")
def http(ska_server: ClockServer) -> Iterator[httpx.Client]:
    with ska_server.client() as client:
        yield client


@pytest.fixture(scope="module")
def clock(ska_server: ClockServer) -> ManualClock:
    return ska_server.clock


@pytest.fixture(scope="session")
def approvers() -> dict[str, list[Approver]]:
    """Three approvers of each key type."""
    return {kind: [Approver(kind, f"{kind}{i}") for i in range(3)] for kind in ("rsa", "ec", "ed25519")}
