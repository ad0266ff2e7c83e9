"""Encrypt and decrypt a large file (default 1 GiB) through ``hsmgate serve`` over HTTP, streamed from
and to disk, and report the time and the server process's peak RSS (VmHWM).

Run: .venv/bin/python bench/file_encryption.py [--mib 1024] [--backend soft|pkcs11]. Prints one JSON
line per backend; the figures of record are in docs/file-encryption.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.e2e.file_stream

from tests.e2e.file_stream import MIB, figures_json, run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--backend", choices=["soft", "pkcs11"], action="append")
    args = parser.parse_args()
    for backend in args.backend or ["soft", "pkcs11"]:
        with tempfile.TemporaryDirectory(prefix=f"hsmgate-file-{backend}-") as directory:
            print(figures_json(run(Path(directory), args.mib * MIB, backend)), flush=True)


if __name__ == "__main__":
    main()
