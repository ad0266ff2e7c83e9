"""The file-encryption container, version 1 (``docs/file-encryption.md`` gives it byte by byte).

ECIES in the terms of the TSB's PKCS#11 ``CKM_ECIES``: an ephemeral P-384 key pair per file, ECDH with
the recipient's key, the ANSI X9.63 KDF with SHA-256 (``CKD_SHA256_KDF``) whose SharedInfo is the whole
container header, and — instead of ``CKM_ECIES``' AES-CBC then HMAC over the whole file, which cannot be
checked before the end of a streamed file — AES-256-GCM per 64 KiB chunk in the STREAM construction
(nonce = 88-bit chunk counter ‖ final-chunk flag), so each chunk is authenticated before it is released
and a truncated, reordered or spliced file fails.

Layout::

    header  "HGFENC" | version 0x01 | suite 0x01 | chunk size u32 BE (65536) | ephemeral point (97 bytes)
    chunks  AES-256-GCM(chunk i) ‖ tag (16 bytes), i = 0 … n−1; every chunk but the last holds 65,536
            plaintext bytes, the last 1 … 65,536 (0 only for an empty file)

This module holds the format and the chunk cipher; the ECDH of a decryption runs in the backend
(:meth:`hsmgate.hsm.base.Partition.ecies_file_key`), which hands back only the per-file key.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

from hsmgate.hsm.base import DecryptFailed, InvalidInput

MAGIC = b"HGFENC"
VERSION = 1
#: Suite 1: P-384 ECDH, X9.63 KDF with SHA-256 (32-byte key), AES-256-GCM with 16-byte tags.
SUITE = 1
#: Plaintext bytes per chunk.
CHUNK_SIZE = 65536
TAG_SIZE = 16
KEY_SIZE = 32
#: The curve of suite 1 and its uncompressed SEC 1 point (0x04 ‖ X ‖ Y).
CURVE = ec.SECP384R1()
CURVE_OID = "1.3.132.0.34"
POINT_SIZE = 97
_FIXED = struct.Struct(">6sBBI")
HEADER_SIZE = _FIXED.size + POINT_SIZE  # 109
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE


class ContainerInvalid(InvalidInput):
    """The data is not a version-1 container: magic, version, suite, chunk size, point or length."""


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed header: ``raw`` (the KDF's SharedInfo) and the sender's ephemeral point."""

    raw: bytes
    ephemeral_point: bytes


def encrypted_size(plain_size: int) -> int:
    """Bytes of the container of a ``plain_size``-byte file."""
    chunks = max(1, -(-plain_size // CHUNK_SIZE))
    return HEADER_SIZE + plain_size + chunks * TAG_SIZE


def plain_size(container_size: int) -> int:
    """Bytes of the plaintext in a container of ``container_size`` bytes; ContainerInvalid when no
    container has that size (truncated inside a chunk, or an empty chunk after full ones)."""
    body = container_size - HEADER_SIZE
    if body < TAG_SIZE:
        raise ContainerInvalid(f"the container is {container_size} bytes, shorter than a header and one "
                               f"chunk ({HEADER_SIZE + TAG_SIZE})")
    chunks = -(-body // SEALED_CHUNK_SIZE)
    last = body - (chunks - 1) * SEALED_CHUNK_SIZE
    if last < TAG_SIZE or (chunks > 1 and last == TAG_SIZE):
        raise ContainerInvalid(f"the container's length ({container_size} bytes) ends inside a chunk: "
                               "it is truncated or padded")
    return body - chunks * TAG_SIZE


def header_of(ephemeral_point: bytes) -> bytes:
    """The header bytes for an ephemeral public point."""
    return _FIXED.pack(MAGIC, VERSION, SUITE, CHUNK_SIZE) + ephemeral_point


def parse_header(data: bytes) -> Header:
    """The header at the start of ``data``; ContainerInvalid names the first field that is wrong."""
    if len(data) < HEADER_SIZE:
        raise ContainerInvalid(f"the container is shorter than its {HEADER_SIZE}-byte header")
    magic, version, suite, chunk_size = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise ContainerInvalid("the file is not an hsmgate file container (magic 'HGFENC' missing)")
    if version != VERSION:
        raise ContainerInvalid(f"container version {version} is not supported (only {VERSION})")
    if suite != SUITE:
        raise ContainerInvalid(f"container suite {suite} is not supported (only {SUITE}: P-384, X9.63-SHA-256, "
                               "AES-256-GCM)")
    if chunk_size != CHUNK_SIZE:
        raise ContainerInvalid(f"container chunk size {chunk_size} is not supported (only {CHUNK_SIZE})")
    point = bytes(data[_FIXED.size:HEADER_SIZE])
    if point[0] != 0x04:
        raise ContainerInvalid("the container's ephemeral public key is not an uncompressed point")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(CURVE, point)
    except ValueError:
        raise ContainerInvalid("the container's ephemeral public key is not a P-384 point") from None
    return Header(bytes(data[:HEADER_SIZE]), point)


def file_key(shared_secret: bytes, header: bytes) -> bytes:
    """ANSI X9.63 KDF, SHA-256 (CKD_SHA256_KDF): SHA-256(Z ‖ 00000001 ‖ header), the 32-byte file key."""
    return X963KDF(algorithm=hashes.SHA256(), length=KEY_SIZE, sharedinfo=header).derive(shared_secret)


def nonce(index: int, final: bool) -> bytes:
    """The 12-byte GCM nonce of chunk ``index``: the counter on 11 bytes, big-endian, then 0x01 for
    the final chunk and 0x00 for the others."""
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def seal(recipient: ec.EllipticCurvePublicKey, source: BinaryIO, size: int) -> Iterator[bytes]:
    """The container of the ``size`` bytes read from ``source``, for ``recipient`` (a P-384 public
    key): the header, then one sealed chunk at a time. Needs no private key of the partition; the
    ephemeral private key lives only in this generator. InvalidInput when ``source`` ends early."""
    if not isinstance(recipient.curve, ec.SECP384R1):
        raise InvalidInput(f"file encryption needs a P-384 key, not {recipient.curve.name}")
    ephemeral = ec.generate_private_key(CURVE)
    point = ephemeral.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)
    header = header_of(point)
    aead = AESGCM(file_key(ephemeral.exchange(ec.ECDH(), recipient), header))
    del ephemeral
    return _sealed_chunks(aead, header, source, size)


def _sealed_chunks(aead: AESGCM, header: bytes, source: BinaryIO, size: int) -> Iterator[bytes]:
    yield header
    index, left = 0, size
    while True:
        length = min(left, CHUNK_SIZE)
        chunk = source.read(length)
        if len(chunk) != length:
            raise InvalidInput(f"the file ended after {size - left + len(chunk)} of {size} bytes")
        left -= length
        yield aead.encrypt(nonce(index, left == 0), chunk, None)
        if left == 0:
            return
        index += 1


def open_file(derive_key: Callable[[Header], bytes], source: BinaryIO,
              container_size: int) -> tuple[int, Iterator[bytes]]:
    """(plaintext length, plaintext chunks) of the container in the seekable ``source`` of
    ``container_size`` bytes. ``derive_key`` turns the header into the file key (the backend's
    ECDH and KDF). Every chunk is authenticated once before this returns — a damaged container
    fails here (ContainerInvalid, DecryptFailed) before a byte of plaintext is released — and
    again while the chunks are read out."""
    source.seek(0)
    header = parse_header(source.read(HEADER_SIZE))
    length = plain_size(container_size)
    key = derive_key(header)
    for _ in open_chunks(key, source, container_size):
        pass
    source.seek(HEADER_SIZE)
    return length, open_chunks(key, source, container_size)


def open_chunks(key: bytes, source: BinaryIO, container_size: int) -> Iterator[bytes]:
    """The plaintext of the container in ``source`` (positioned after its header), one chunk at a
    time, each released only once its tag is checked. DecryptFailed when a chunk does not
    authenticate (wrong key, changed byte, chunks reordered, truncated at a chunk boundary)."""
    aead = AESGCM(key)
    body = container_size - HEADER_SIZE
    chunks = -(-body // SEALED_CHUNK_SIZE)
    for index in range(chunks):
        final = index == chunks - 1
        length = body - index * SEALED_CHUNK_SIZE if final else SEALED_CHUNK_SIZE
        sealed = source.read(length)
        if len(sealed) != length:
            raise ContainerInvalid(f"the container ended inside chunk {index}")
        try:
            yield aead.decrypt(nonce(index, final), sealed, None)
        except InvalidTag:
            raise DecryptFailed(f"chunk {index} of the container does not authenticate: wrong key, or the "
                                "container was changed, truncated or reordered") from None
