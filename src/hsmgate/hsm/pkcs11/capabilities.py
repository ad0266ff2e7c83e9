"""What a token lets hsmgate do, from its mechanism list alone (no login): the key specs it can
generate and the signing mechanisms it can run. The partition declares these (the optional
operations are added by its probe, ``operations.py``), and ``hsmgate pkcs11 list`` shows them."""

from __future__ import annotations

from dataclasses import dataclass, field

from hsmgate.hsm import softcrypto
from hsmgate.hsm.base import Capabilities, KeyType
from hsmgate.hsm.pkcs11.mechanisms import (
    AES_SIZES,
    CKM_CAMELLIA_KEY_GEN,
    DSA_SIZES,
    HMAC_KEYS,
    RSA_SIZES,
    SCHEME_KEY_TYPES,
    M,
)
from hsmgate.hsm.pkcs11.signing import all_mechanisms, plan_signature


@dataclass(frozen=True, slots=True)
class TokenMechanisms:
    """A token's mechanisms (``CKM_`` numbers) and the (min, max) key sizes ``C_GetMechanismInfo`` gives
    for them (at least for those that generate keys or compute HMACs; max 0: unbounded)."""

    mechanisms: frozenset[int]
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)

    def fits(self, mechanism: int, size: int) -> bool:
        """``mechanism`` is offered and ``size`` (in its unit) is within its range."""
        low, high = self.ranges.get(mechanism, (0, 0))
        return mechanism in self.mechanisms and low <= size and (high == 0 or size <= high)

    def capabilities(self) -> Capabilities:
        """Key generation and signing as this token offers them."""
        dsa_params = M.DSA_PARAMETER_GEN in self.mechanisms
        specs: dict[KeyType, set[int | str]] = {
            KeyType.RSA: {s for s in RSA_SIZES if self.fits(M.RSA_PKCS_KEY_PAIR_GEN, s)},
            KeyType.DSA: {s for s in DSA_SIZES if dsa_params and self.fits(M.DSA_KEY_PAIR_GEN, s)},
            KeyType.EC: {oid for oid, (_, bits) in softcrypto.EC_CURVES.items()
                         if self.fits(M.EC_KEY_PAIR_GEN, bits)},
            KeyType.ED: set(softcrypto.ED_CURVES) if M.EC_EDWARDS_KEY_PAIR_GEN in self.mechanisms else set(),
            KeyType.AES: {s for s in AES_SIZES if self.fits(M.AES_KEY_GEN, s // 8)},  # AES sizes in bytes
            KeyType.TDEA: {192} if M.DES3_KEY_GEN in self.mechanisms else set(),
            KeyType.CAMELLIA: {s for s in AES_SIZES if self.fits(CKM_CAMELLIA_KEY_GEN, s // 8)},
        }
        for key_type, (alg, hmac, _) in HMAC_KEYS.items():
            if M.GENERIC_SECRET_KEY_GEN in self.mechanisms and self.fits(hmac, alg.digest_size):
                specs[key_type] = {alg.digest_size * 8}
        sign = frozenset((key_type, m) for scheme, key_type in SCHEME_KEY_TYPES.items()
                         for m in all_mechanisms(scheme)
                         if plan_signature(self.mechanisms, key_type, m) is not None)
        return Capabilities(backend="pkcs11", key_specs={t: frozenset(s) for t, s in specs.items() if s},
                            sign=sign)
