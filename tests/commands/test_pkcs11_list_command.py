"""``hsmgate pkcs11 list`` against a SoftHSM2 token, checked with OpenSC's ``pkcs11-tool`` (an independent
PKCS#11 client): the same mechanisms with the same CKF_ flags and key sizes, the token's serial in full,
and what hsmgate offers on the token (key algorithms, sizes, signature algorithms) following the mechanisms
pkcs11-tool lists.

The command runs as an operator runs it: ``python -m hsmgate`` in its own process, output to a pipe (so
rich lays it out for 80 columns)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest
from pkcs11 import MechanismFlag

from hsmgate.hsm.pkcs11.module import flag_names
from tests.softhsm import SoftHsmToken

pytest_plugins = ["tests.softhsm_fixtures"]
pytestmark = [pytest.mark.pkcs11, pytest.mark.subprocess,
              pytest.mark.skipif(shutil.which("pkcs11-tool") is None, reason="OpenSC is not installed")]

#: pkcs11-tool's words for the CKF_ bits -> python-pkcs11's MechanismFlag names ("EC curve name" is
#: CKF_EC_CURVENAME of PKCS#11 3.0, which python-pkcs11 0.10 does not name: shown as its bit).
TOOL_FLAGS = {"hw": "HW", "encrypt": "ENCRYPT", "decrypt": "DECRYPT", "digest": "DIGEST", "sign": "SIGN",
              "sign_recover": "SIGN_RECOVER", "verify": "VERIFY", "verify_recover": "VERIFY_RECOVER",
              "generate": "GENERATE", "generate_key_pair": "GENERATE_KEY_PAIR", "wrap": "WRAP",
              "unwrap": "UNWRAP", "derive": "DERIVE", "EC F_P": "EC_F_P", "EC F_2M": "EC_F_2M",
              "EC parameters": "EC_ECPARAMETERS", "EC OID": "EC_NAMEDCURVE", "EC uncompressed": "EC_UNCOMPRESS",
              "EC compressed": "EC_COMPRESS", "EC curve name": "0x4000000"}
#: Mechanisms that must be in both listings (CKM_DES_KEY_GEN: python-pkcs11 calls it _DES_KEY_GEN).
MUST_MATCH = ("AES-GCM", "AES-CBC", "AES-KEY-WRAP", "RSA-PKCS", "RSA-PKCS-OAEP", "RSA-PKCS-PSS", "ECDSA", "EDDSA",
              "SHA256-HMAC", "SHA-1", "DES3-KEY-GEN", "DES-KEY-GEN", "EC-EDWARDS-KEY-PAIR-GEN")


class Listing:
    """One mechanism as a listing shows it: (flags, (min, max) key size or None)."""

    def __init__(self, flags: set[str], sizes: tuple[int, int] | None) -> None:
        self.flags, self.sizes = flags, sizes

    def __repr__(self) -> str:
        return f"Listing({sorted(self.flags)}, {self.sizes})"


@pytest.fixture(scope="module")
def token(softhsm_factory: Callable[[str], SoftHsmToken]) -> SoftHsmToken:
    return softhsm_factory("list-command")


def run(command: list[str], token: SoftHsmToken) -> str:
    env = {**os.environ, "SOFTHSM2_CONF": token.conf_path, "COLUMNS": "80"}
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=120).stdout


def hsmgate_list(token: SoftHsmToken, *options: str) -> str:
    return run([sys.executable, "-W", "ignore", "-m", "hsmgate", "pkcs11", "list", "--module", token.module_path,
                *options], token)


def tool_mechanisms(token: SoftHsmToken) -> dict[str, Listing]:
    """``pkcs11-tool -M`` of the token: name (pkcs11-tool's spelling) -> Listing."""
    output = run(["pkcs11-tool", "--module", token.module_path, "--token-label", token.token_label, "-M"], token)
    listings = {}
    for line in output.split("Supported mechanisms:", 1)[1].splitlines():
        if not line.strip():
            continue
        name, *fields = line.strip().split(", ")
        flags, sizes = set(), None
        for field in fields:
            if field.startswith("keySize="):
                low, high = (int(n) % 2**32 for n in field.removeprefix("keySize={").rstrip("}").split(","))
                sizes = (low, high)
            elif field.startswith("other flags=0x"):
                flags |= set(flag_names(int(field.removeprefix("other flags="), 16), MechanismFlag))
            else:
                assert field in TOOL_FLAGS, f"unknown pkcs11-tool flag {field!r} in {line!r}"
                flags.add(TOOL_FLAGS[field])
        listings[name] = Listing(flags, sizes)
    return listings


def our_mechanisms(token: SoftHsmToken) -> dict[str, Listing]:
    """``hsmgate pkcs11 list --json`` for the token: name in pkcs11-tool's spelling -> Listing."""
    slots = json.loads(hsmgate_list(token, "--json"))
    (slot,) = [s for s in slots if s["token"] and s["token"]["label"].strip() == token.token_label]
    return {m["name"].removeprefix("CKM_").replace("_", "-"):
            Listing(set(m["flags"]), (m["min_key_size"], m["max_key_size"])) for m in slot["mechanisms"]}


def test_mechanism_flags_and_sizes_agree_with_pkcs11_tool(token: SoftHsmToken) -> None:
    ours, tool = our_mechanisms(token), tool_mechanisms(token)
    common = ours.keys() & tool.keys()
    assert set(MUST_MATCH) <= common and len(common) >= 50, sorted(tool.keys() - ours.keys())
    assert ours["AES-GCM"].flags == {"ENCRYPT", "DECRYPT"}
    assert {"SIGN", "VERIFY", "EC_F_P", "EC_NAMEDCURVE", "EC_UNCOMPRESS"} == ours["ECDSA"].flags
    for name in sorted(common):
        assert ours[name].flags == tool[name].flags, name
        if tool[name].sizes is not None:  # pkcs11-tool leaves out a range of (0, 0)
            assert ours[name].sizes == tool[name].sizes, name


def test_table_shows_serials_and_names_in_full(token: SoftHsmToken) -> None:
    listing = run(["pkcs11-tool", "--module", token.module_path, "-L"], token)
    block = listing.split(f"token label        : {token.token_label}\n", 1)[1]
    serial = re.search(r"serial num\s+: (\S+)", block)
    assert serial is not None
    output = hsmgate_list(token)
    assert re.search(rf"^serial\s+{serial.group(1)}\s*$", output, re.MULTILINE), output
    assert "…" not in output  # nothing cut short at 80 columns
    assert "CKM_DES_KEY_GEN " in output and "CKM__" not in output
    gcm = next(line for line in output.splitlines() if "CKM_AES_GCM " in line)
    assert gcm.split("│")[-2].strip() == "ENCRYPT, DECRYPT"


def test_flag_names_decode_each_bit_once() -> None:
    assert flag_names(0x300, MechanismFlag) == ["ENCRYPT", "DECRYPT"]
    assert flag_names(0x1902800, MechanismFlag) == ["SIGN", "VERIFY", "EC_F_P", "EC_NAMEDCURVE", "EC_UNCOMPRESS"]
    assert flag_names(0x40000300, MechanismFlag) == ["ENCRYPT", "DECRYPT", "0x40000000"]  # no member: shown
    assert flag_names(0, MechanismFlag) == []


def offer_of(token: SoftHsmToken) -> dict[str, dict[str, list[str]]]:
    """The ``hsmgate`` part of ``pkcs11 list --json`` for the token: algorithm -> its entry."""
    slots = json.loads(hsmgate_list(token, "--json"))
    (slot,) = [s for s in slots if s["token"] and s["token"]["label"].strip() == token.token_label]
    return {entry["algorithm"]: entry for entry in slot["hsmgate"]}


#: ``POST /v1/key`` algorithm -> the pkcs11-tool name of the mechanism that generates such keys.
GENERATORS = {"RSA": "RSA-PKCS-KEY-PAIR-GEN", "DSA": "DSA-KEY-PAIR-GEN", "EC": "ECDSA-KEY-PAIR-GEN",
              "ED": "EC-EDWARDS-KEY-PAIR-GEN", "AES": "AES-KEY-GEN", "Camellia": "CAMELLIA-KEY-GEN",
              "ChaCha20": "CHACHA20-KEY-GEN"}


def test_what_hsmgate_offers_follows_the_mechanisms_pkcs11_tool_lists(token: SoftHsmToken) -> None:
    offer, tool = offer_of(token), tool_mechanisms(token)
    for algorithm, generator in GENERATORS.items():
        assert (algorithm in offer) == (generator in tool), algorithm
    for algorithm, unit in (("RSA", 1), ("DSA", 1), ("AES", 8)):  # AES ranges are in bytes
        sizes = tool[GENERATORS[algorithm]].sizes
        assert sizes is not None and offer[algorithm]["generates"]
        assert all(sizes[0] <= int(size) // unit <= sizes[1] for size in offer[algorithm]["generates"]), algorithm
    assert "2048" not in offer["DSA"]["generates"]  # SoftHSM2 stops DSA at 1024 bits
    assert "secp256r1" in offer["EC"]["generates"] and "Ed25519" in offer["ED"]["generates"]
    ecdsa = set(offer["EC"]["signatureAlgorithms"])
    assert ("ECDSA" in tool) == ({"SHA256_WITH_ECDSA", "NONE_WITH_ECDSA"} <= ecdsa)
    assert "SHA256_WITH_ECDSA_DETERMINISTIC" not in ecdsa  # no token promises RFC 6979
    assert ("EDDSA" in tool) == (offer["ED"]["signatureAlgorithms"] == ["EDDSA"])
    assert ("SHA256-RSA-PKCS-PSS" in tool or "RSA-PKCS-PSS" in tool) == (
        "SHA256_WITH_RSA_PSS" in offer["RSA"]["signatureAlgorithms"])
    assert offer["AES"]["signatureAlgorithms"] == []


def test_the_table_shows_what_hsmgate_offers(token: SoftHsmToken) -> None:
    output = hsmgate_list(token, "--no-mechanisms")
    assert "CKM_AES_GCM" not in output  # no mechanism table
    assert "keys it creates and signature algorithms it runs" in output
    assert re.search(r"│ ED\s+│ Ed25519, Ed448\s+│ EDDSA\s+│", output), output
    assert re.search(r"│ DSA\s+│ 1024\s+│ SHA1_WITH_DSA,", output), output
