"""RFC 8554 Appendix F test cases 1 and 2 (two-level HSS, H5/W8 and H10/W4 over H5/W8): hsmgate's
LMS verifier (``hsm/softlms.py``, behind ``/v1/verify``) accepts the published signatures and
rejects them for another message or with one bit changed; the second library (hsslms) agrees."""

from __future__ import annotations

from pathlib import Path

import hsslms
import pytest

from hsmgate.hsm import softlms

DATA = Path(__file__).parent / "data"


def _case(number: int) -> tuple[bytes, bytes, bytes]:
    lines = [line for line in (DATA / f"rfc8554_test_case_{number}.txt").read_text().splitlines()
             if not line.startswith("#")]
    return bytes.fromhex(lines[0]), (lines[1] + "\n").encode(), bytes.fromhex(lines[2])


@pytest.mark.parametrize("number", [1, 2])
def test_rfc8554_appendix_f(number: int) -> None:
    public, message, signature = _case(number)
    spki = softlms.spki_of(public)
    assert softlms.verify(spki, message, signature)
    hsslms.HSS_Pub(public).verify(message, signature)
    assert not softlms.verify(spki, message + b"!", signature)
    flipped = signature[:100] + bytes([signature[100] ^ 1]) + signature[101:]
    assert not softlms.verify(spki, message, flipped)
    assert not softlms.verify(spki, message, signature[:-1])
