"""An independent SLH-DSA verifier (FIPS 205, §§ 4–10), written from the standard in plain Python.

No second SLH-DSA library installs here (``cryptography`` has none, liboqs cannot load), so the
tests check hsmgate's ``pqcrypto``-made signatures with this: verification only, both hash
families, all twelve parameter sets, pure SLH-DSA and HashSLH-DSA. It is slow but verification is
only ~10k hash calls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# FIPS 205 Table 2: n, h, d, h', a, k, m
PARAMS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "128s": (16, 63, 7, 9, 12, 14, 30),
    "128f": (16, 66, 22, 3, 6, 33, 34),
    "192s": (24, 63, 7, 9, 14, 17, 39),
    "192f": (24, 66, 22, 3, 8, 33, 42),
    "256s": (32, 64, 8, 8, 14, 22, 47),
    "256f": (32, 68, 17, 4, 9, 35, 49),
}
WOTS_HASH, WOTS_PK, TREE, FORS_TREE, FORS_ROOTS = 0, 1, 2, 3, 4
LG_W, W = 4, 16

# DER OIDs of the pre-hash functions (FIPS 205 §10.2.2)
PREHASH_OIDS = {
    "sha256": 1, "sha384": 2, "sha512": 3, "sha224": 4, "sha3_224": 7, "sha3_256": 8, "sha3_384": 9,
    "sha3_512": 10, "shake_128": 11, "shake_256": 12,
}


def prehash(name: str, message: bytes) -> bytes:
    if name == "shake_128":
        return hashlib.shake_128(message).digest(32)
    if name == "shake_256":
        return hashlib.shake_256(message).digest(64)
    return hashlib.new(name, message).digest()


def prehash_oid(name: str) -> bytes:
    return bytes.fromhex("06096086480165030402") + bytes([PREHASH_OIDS[name]])


class Adrs:
    """The 32-byte address of FIPS 205 §4.2."""

    def __init__(self) -> None:
        self.a = bytearray(32)

    def copy(self) -> Adrs:
        other = Adrs()
        other.a = bytearray(self.a)
        return other

    def _set(self, offset: int, size: int, value: int) -> None:
        self.a[offset:offset + size] = value.to_bytes(size, "big")

    def layer(self, value: int) -> None:
        self._set(0, 4, value)

    def tree(self, value: int) -> None:
        self._set(4, 12, value)

    def type_and_clear(self, value: int) -> None:
        self._set(16, 4, value)
        self.a[20:32] = bytes(12)

    def keypair(self, value: int) -> None:
        self._set(20, 4, value)

    def get_keypair(self) -> int:
        return int.from_bytes(self.a[20:24], "big")

    def chain(self, value: int) -> None:  # = tree height
        self._set(24, 4, value)

    def hash(self, value: int) -> None:  # = tree index
        self._set(28, 4, value)

    def get_index(self) -> int:
        return int.from_bytes(self.a[28:32], "big")

    def compressed(self) -> bytes:
        a = self.a
        return bytes(a[3:4] + a[8:16] + a[19:20] + a[20:32])


@dataclass(frozen=True)
class Scheme:
    family: str  # "SHA2" or "SHAKE"
    n: int
    h: int
    d: int
    hp: int
    a: int
    k: int
    m: int

    @property
    def length(self) -> int:
        return 2 * self.n + 3

    # tweakable hash functions (FIPS 205 §11.1 SHAKE, §11.2 SHA2)
    def h_msg(self, r: bytes, seed: bytes, root: bytes, message: bytes) -> bytes:
        if self.family == "SHAKE":
            return hashlib.shake_256(r + seed + root + message).digest(self.m)
        big = self.n > 16
        h = hashlib.sha512 if big else hashlib.sha256
        return _mgf1(h, r + seed + h(r + seed + root + message).digest(), self.m)

    def f(self, seed: bytes, adrs: Adrs, data: bytes) -> bytes:
        if self.family == "SHAKE":
            return hashlib.shake_256(seed + bytes(adrs.a) + data).digest(self.n)
        return hashlib.sha256(seed + bytes(64 - self.n) + adrs.compressed() + data).digest()[:self.n]

    def t(self, seed: bytes, adrs: Adrs, data: bytes) -> bytes:  # H and T_l
        if self.family == "SHAKE" or self.n == 16:
            return self.f(seed, adrs, data)
        return hashlib.sha512(seed + bytes(128 - self.n) + adrs.compressed() + data).digest()[:self.n]


def _mgf1(h, seed: bytes, length: int) -> bytes:  # type: ignore[no-untyped-def]
    out = b""
    counter = 0
    while len(out) < length:
        out += h(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def scheme_for(parameter_set: str) -> Scheme:
    """``parameter_set`` as the TSB names it, e.g. ``SLH-DSA-SHAKE-192f``."""
    _, _, family, size = parameter_set.split("-")
    return Scheme(family, *PARAMS[size])


def base_2b(data: bytes, b: int, out_len: int) -> list[int]:
    out, total, bits, pos = [], 0, 0, 0
    for _ in range(out_len):
        while bits < b:
            total = (total << 8) + data[pos]
            pos += 1
            bits += 8
        bits -= b
        out.append((total >> bits) % (1 << b))
    return out


def _wots_pk_from_sig(s: Scheme, sig: bytes, message: bytes, seed: bytes, adrs: Adrs) -> bytes:
    n, len1 = s.n, 2 * s.n
    msg = base_2b(message, LG_W, len1)
    csum = sum(W - 1 - v for v in msg) << 4
    msg += base_2b(csum.to_bytes(2, "big"), LG_W, 3)
    parts = []
    for i in range(s.length):
        adrs.chain(i)
        tmp = sig[i * n:(i + 1) * n]
        for j in range(msg[i], W - 1):
            adrs.hash(j)
            tmp = s.f(seed, adrs, tmp)
        parts.append(tmp)
    pk_adrs = adrs.copy()
    pk_adrs.type_and_clear(WOTS_PK)
    pk_adrs.keypair(adrs.get_keypair())
    return s.t(seed, pk_adrs, b"".join(parts))


def _climb(s: Scheme, seed: bytes, adrs: Adrs, node: bytes, index: int, auth: bytes, height: int) -> bytes:
    n = s.n
    for j in range(height):
        adrs.chain(j + 1)
        sibling = auth[j * n:(j + 1) * n]
        if (index >> j) % 2 == 0:
            adrs.hash(adrs.get_index() // 2)
            node = s.t(seed, adrs, node + sibling)
        else:
            adrs.hash((adrs.get_index() - 1) // 2)
            node = s.t(seed, adrs, sibling + node)
    return node


def _xmss_pk_from_sig(s: Scheme, idx: int, sig: bytes, message: bytes, seed: bytes, adrs: Adrs) -> bytes:
    adrs.type_and_clear(WOTS_HASH)
    adrs.keypair(idx)
    wots_len = s.length * s.n
    node = _wots_pk_from_sig(s, sig[:wots_len], message, seed, adrs)
    adrs.type_and_clear(TREE)
    adrs.hash(idx)
    return _climb(s, seed, adrs, node, idx, sig[wots_len:], s.hp)


def _fors_pk_from_sig(s: Scheme, sig: bytes, md: bytes, seed: bytes, adrs: Adrs) -> bytes:
    n, a, k = s.n, s.a, s.k
    indices = base_2b(md, a, k)
    roots = []
    for i in range(k):
        part = sig[i * (a + 1) * n:(i + 1) * (a + 1) * n]
        adrs.chain(0)
        adrs.hash((i << a) + indices[i])
        node = s.f(seed, adrs, part[:n])
        roots.append(_climb(s, seed, adrs, node, indices[i], part[n:], a))
    pk_adrs = adrs.copy()
    pk_adrs.type_and_clear(FORS_ROOTS)
    pk_adrs.keypair(adrs.get_keypair())
    return s.t(seed, pk_adrs, b"".join(roots))


def verify_internal(s: Scheme, message: bytes, signature: bytes, public_key: bytes) -> bool:
    n = s.n
    fors_len = s.k * (s.a + 1) * n
    xmss_len = (s.length + s.hp) * n
    if len(signature) != n + fors_len + s.d * xmss_len or len(public_key) != 2 * n:
        return False
    seed, root = public_key[:n], public_key[n:]
    r, sig_fors, sig_ht = signature[:n], signature[n:n + fors_len], signature[n + fors_len:]
    digest = s.h_msg(r, seed, root, message)
    md_len, tree_len, leaf_len = (s.k * s.a + 7) // 8, (s.h - s.h // s.d + 7) // 8, (s.h // s.d + 7) // 8
    md = digest[:md_len]
    idx_tree = int.from_bytes(digest[md_len:md_len + tree_len], "big") % (1 << (s.h - s.h // s.d))
    idx_leaf = int.from_bytes(digest[md_len + tree_len:md_len + tree_len + leaf_len], "big") % (1 << (s.h // s.d))
    adrs = Adrs()
    adrs.tree(idx_tree)
    adrs.type_and_clear(FORS_TREE)
    adrs.keypair(idx_leaf)
    node = _fors_pk_from_sig(s, sig_fors, md, seed, adrs)
    # hypertree (Algorithm 13)
    adrs = Adrs()
    adrs.tree(idx_tree)
    node = _xmss_pk_from_sig(s, idx_leaf, sig_ht[:xmss_len], node, seed, adrs)
    for j in range(1, s.d):
        idx_leaf = idx_tree % (1 << s.hp)
        idx_tree >>= s.hp
        adrs.layer(j)
        adrs.tree(idx_tree)
        node = _xmss_pk_from_sig(s, idx_leaf, sig_ht[j * xmss_len:(j + 1) * xmss_len], node, seed, adrs)
    return node == root


def verify(parameter_set: str, public_key: bytes, message: bytes, signature: bytes, context: bytes = b"",
           prehash_name: str | None = None) -> bool:
    """SLH-DSA.verify (Algorithm 24) or HashSLH-DSA.verify (Algorithm 25) with a raw public key."""
    if prehash_name is None:
        m_prime = b"\x00" + bytes([len(context)]) + context + message
    else:
        m_prime = b"\x01" + bytes([len(context)]) + context + prehash_oid(prehash_name) + prehash(prehash_name, message)
    return verify_internal(scheme_for(parameter_set), m_prime, signature, public_key)
