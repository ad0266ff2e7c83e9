"""pytest fixtures for SoftHSM2 tokens (see ``tests/softhsm.py``).

Wire them for every test with ``pytest_plugins = ["tests.softhsm_fixtures"]`` in ``tests/conftest.py``.
All tokens of a test session live in one directory, because a process reads ``SOFTHSM2_CONF`` once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.softhsm import SoftHsmToken, create_token, softhsm_available


@pytest.fixture(scope="session")
def softhsm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's SoftHSM2 directory (config + tokens); skips when SoftHSM2 is not installed."""
    if not softhsm_available():
        pytest.skip("SoftHSM2 is not installed")
    return tmp_path_factory.mktemp("softhsm")


@pytest.fixture(scope="session")
def softhsm_token(softhsm_dir: Path) -> SoftHsmToken:
    """One initialised token (label ``hsmgate-test``, PIN 1234) shared by the session."""
    return create_token(softhsm_dir, "hsmgate-test")


@pytest.fixture(scope="session")
def softhsm_factory(softhsm_dir: Path, softhsm_token: SoftHsmToken) -> Callable[[str], SoftHsmToken]:
    """Makes more tokens in the session's directory: ``softhsm_factory("label")``."""
    return lambda label: create_token(softhsm_dir, label)
