"""The layering rules of ``hsm`` (architecture.md): it imports nothing above it nor ``store`` (and ``store``
does not import it), and no module of it imports another module's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hsmgate.hsm

HSM = Path(hsmgate.hsm.__file__).parent


pytestmark = pytest.mark.subprocess

def _loaded_after(code: str) -> set[str]:
    """The ``hsmgate`` modules a fresh interpreter has loaded after running ``code``."""
    script = f"{code}\nimport sys\nprint('\\n'.join(n for n in sys.modules if n.startswith('hsmgate')))"
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True,
                            check=True, timeout=60)
    return set(result.stdout.split())


def test_hsm_imports_only_itself() -> None:
    loaded = _loaded_after("import importlib, pkgutil, hsmgate.hsm as h\n"
                           "for m in pkgutil.walk_packages(h.__path__, 'hsmgate.hsm.'):\n"
                           "    importlib.import_module(m.name)")
    assert "hsmgate.hsm.soft" in loaded and "hsmgate.hsm.pkcs11.partition" in loaded
    assert {m for m in loaded if m != "hsmgate" and not m.startswith("hsmgate.hsm")} == set()


def test_the_soft_key_store_does_not_import_hsm() -> None:
    loaded = _loaded_after("import hsmgate.store.soft_keys")
    assert "hsmgate.store.soft_keys" in loaded
    assert {m for m in loaded if m.startswith("hsmgate.hsm")} == set()


def test_no_private_names_are_imported_across_hsm_modules() -> None:
    found = []
    for path in sorted(HSM.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    found.append(f"{path.relative_to(HSM)}:{node.lineno}: {', '.join(private)}")
    assert found == []
