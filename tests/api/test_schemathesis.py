"""Property-based run of schemathesis against the live OpenAPI document, with a bounded budget.

It must find no 5xx response and no response that breaks the documented schema or content type.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import LiveServer, soft_settings

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

BUDGET_SECONDS = int(os.environ.get("HSMGATE_SCHEMATHESIS_SECONDS", "45"))


def test_schemathesis_finds_no_server_error_or_schema_violation(tmp_path: Path) -> None:
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert executable, "schemathesis is a test dependency (pip install -e '.[test]')"
    with LiveServer(soft_settings(tmp_path)) as server:
        result = subprocess.run(
            [executable, "run", f"{server.url}/v3/api-docs",
             "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
             # one worker: with two, hypothesis's lambda-source cache (not thread-safe) failed now and
             # then with "AST constructor recursion depth mismatch" inside schemathesis itself
             "--max-time", str(BUDGET_SECONDS), "--workers", "1", "--seed", "20261130",
             "--generation-database", "none"],
            capture_output=True, text=True, timeout=BUDGET_SECONDS + 120, cwd=tmp_path,
        )
    tail = "\n".join(result.stdout.splitlines()[-200:])
    assert result.returncode == 0, f"schemathesis found problems:\n{tail}\n{result.stderr[-2000:]}"
    assert "passed" in result.stdout
