"""The file container's sizes and header checks (hsm/file_container.py), without a backend."""

from __future__ import annotations

import io
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hsmgate.hsm import file_container as fc
from hsmgate.hsm.base import DecryptFailed, InvalidInput


@pytest.mark.parametrize("size", [0, 1, fc.CHUNK_SIZE - 1, fc.CHUNK_SIZE, fc.CHUNK_SIZE + 1, 10 * fc.CHUNK_SIZE,
                                  1024**3])
def test_sizes_invert(size: int) -> None:
    assert fc.plain_size(fc.encrypted_size(size)) == size


def test_impossible_lengths_are_refused() -> None:
    for length in (0, fc.HEADER_SIZE, fc.HEADER_SIZE + fc.TAG_SIZE - 1,
                   fc.HEADER_SIZE + fc.SEALED_CHUNK_SIZE + 5,  # ends inside the second chunk's tag
                   fc.HEADER_SIZE + fc.SEALED_CHUNK_SIZE + fc.TAG_SIZE):  # an empty chunk after a full one
        with pytest.raises(fc.ContainerInvalid):
            fc.plain_size(length)


def test_seal_then_open_and_the_source_must_hold_the_size() -> None:
    recipient = ec.generate_private_key(ec.SECP384R1())
    data = os.urandom(fc.CHUNK_SIZE + 3)
    container = b"".join(fc.seal(recipient.public_key(), io.BytesIO(data), len(data)))
    assert len(container) == fc.encrypted_size(len(data))

    def derive(header: fc.Header) -> bytes:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), header.ephemeral_point)
        return fc.file_key(recipient.exchange(ec.ECDH(), peer), header.raw)

    length, chunks = fc.open_file(derive, io.BytesIO(container), len(container))
    assert length == len(data) and b"".join(chunks) == data
    with pytest.raises(InvalidInput, match="ended after 10 of 11 bytes"):
        b"".join(fc.seal(recipient.public_key(), io.BytesIO(bytes(10)), 11))
    with pytest.raises(InvalidInput, match="P-384"):
        fc.seal(ec.generate_private_key(ec.SECP256R1()).public_key(), io.BytesIO(b""), 0)
    damaged = bytearray(container)
    damaged[-1] ^= 1
    with pytest.raises(DecryptFailed, match="chunk 1"):
        fc.open_file(derive, io.BytesIO(bytes(damaged)), len(damaged))


def test_header_fields_are_checked_in_order() -> None:
    point = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        fc.serialization.Encoding.X962, fc.serialization.PublicFormat.UncompressedPoint)
    good = fc.header_of(point)
    assert len(good) == fc.HEADER_SIZE == 109 and fc.parse_header(good).ephemeral_point == point
    for damaged, message in ((b"hgfenc" + good[6:], "magic"), (good[:6] + b"\x09" + good[7:], "version 9"),
                             (good[:7] + b"\x00" + good[8:], "suite 0"),
                             (good[:8] + b"\x00\x00\x10\x00" + good[12:], "chunk size 4096"),
                             (good[:12] + b"\x03" + good[13:], "uncompressed"),
                             (good[:13] + bytes(96), "not a P-384 point"), (good[:100], "shorter")):
        with pytest.raises(fc.ContainerInvalid, match=message):
            fc.parse_header(damaged)
