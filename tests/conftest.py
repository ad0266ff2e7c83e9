"""Shared fixtures: one live soft-backend server for the session and HTTP clients of it.

The pieces these are made of (settings, :class:`~tests.helpers.LiveServer`, …) live in
``tests/helpers.py``; import them from there.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import LiveServer, soft_settings

pytest_plugins = ["tests.softhsm_fixtures", "tests.marker_guard"]


@pytest.fixture(scope="session")
def soft_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live soft-backend server for the whole test session."""
    with LiveServer(soft_settings(tmp_path_factory.mktemp("soft-server"))) as server:
        yield server


@pytest.fixture(scope="module")
def http(soft_server: LiveServer) -> Iterator[httpx.Client]:
    """A client of the session's soft server shared by the tests of a module. Modules and folders
    that test another server (SKA, PKCS#11) override ``http`` with a client of theirs."""
    with soft_server.client() as client:
        yield client


@pytest.fixture()
def client(soft_server: LiveServer) -> Iterator[httpx.Client]:
    """A client of the session's soft server of its own, for one test."""
    with soft_server.client() as http:
        yield http
