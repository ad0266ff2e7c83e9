"""A 256 MiB file encrypts and decrypts through ``hsmgate serve`` with bounded server memory: the
server's peak RSS grows by far less than the file (the file is spooled to an anonymous temporary
file and streamed in 64 KiB chunks). ``bench/file_encryption.py`` runs the same with 1 GiB."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.file_stream import MIB, run

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


@pytest.mark.parametrize("backend", ["soft", pytest.param("pkcs11", marks=pytest.mark.pkcs11)])
def test_a_large_file_streams_with_bounded_memory(tmp_path: Path, backend: str) -> None:
    size = 256 * MIB
    figures = run(tmp_path, size, backend)
    assert figures.round_trip_equal
    assert figures.container_bytes == 109 + size + 16 * (size // 65536)
    growth_kib = figures.server_peak_rss_kib - figures.server_rss_before_kib
    assert growth_kib < 64 * 1024, figures  # under 64 MiB for a 256 MiB file
