"""The seed walkthrough (rest-api-introduction.mdx) over a real socket, checked with the OpenSSL CLI.

The two requests are sent exactly as the seed writes them (only ``<keyname>`` is replaced). The
signature and the key's attestation are then verified by ``openssl``, not by hsmgate.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import unique

OPENSSL = shutil.which("openssl")

SEED_CREATE_KEY = """{
  "label": "<keyname>",
  "algorithm": "RSA",
  "keySize": 2048,
  "attributes": {
      "sign": true,
      "extractable": false,
      "modifiable": true,
      "destroyable": true,
      "sensitive": true,
      "decrypt": false,
      "unwrap": false
  }
}"""

SEED_SIGN = """{
    "signRequest": {
        "payload": "UGF5bG9hZA==",
        "signKeyName": "<keyname>",
        "signatureAlgorithm": "SHA224_WITH_RSA_PSS"
    }
}"""

HEADERS = {"accept": "application/json", "Content-Type": "application/json"}

#: The top-level and ``json`` keys of the seed's response, and the attribute keys.
SEED_TOP_KEYS = {"xml", "json", "xmlSignature", "attestationKeyName"}
SEED_JSON_KEYS = {
    "label",
    "id",
    "algorithm",
    "algorithmOid",
    "curveOid",
    "keySize",
    "createTime",
    "attestTime",
    "publicKey",
    "addressTruncated",
    "attributes",
    "policy",
}
SEED_ATTRIBUTE_KEYS = {
    "decrypt",
    "sign",
    "ekaSign",
    "unwrap",
    "derive",
    "sensitive",
    "alwaysSensitive",
    "extractable",
    "neverExtractable",
    "modifiable",
    "copyable",
    "destroyable",
}
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def openssl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None, "the OpenSSL CLI is required by this test"
    return subprocess.run([OPENSSL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=30)


def der_to_pem(der_b64: str, directory: Path, name: str) -> Path:
    der = directory / f"{name}.der"
    der.write_bytes(base64.b64decode(der_b64))
    pem = directory / f"{name}.pem"
    result = openssl("pkey", "-pubin", "-inform", "DER", "-in", der, "-out", pem, cwd=directory)
    assert result.returncode == 0, result.stderr
    assert pem.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    return pem


@pytest.fixture(scope="module")
def walkthrough(soft_server: Any) -> dict[str, Any]:
    """Run both seed requests once; the tests below check different parts of the outcome."""
    label = unique("REST-API_Tutorial")
    with soft_server.client() as http:
        created = http.post("/v1/key", content=SEED_CREATE_KEY.replace("<keyname>", label), headers=HEADERS)
        signed = http.post(
            "/v1/synchronousSign", content=SEED_SIGN.replace("<keyname>", label), headers=HEADERS
        )
        attestation = http.get("/v1/key/attestation-key/attributes")
    return {"label": label, "created": created, "signed": signed, "attestation": attestation}


def test_create_key_response_has_the_seed_shape(walkthrough: dict[str, Any]) -> None:
    response: httpx.Response = walkthrough["created"]
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert SEED_TOP_KEYS <= body.keys()
    key = body["json"]
    assert SEED_JSON_KEYS <= key.keys()
    assert SEED_ATTRIBUTE_KEYS <= key["attributes"].keys()

    assert key["label"] == walkthrough["label"]
    assert key["id"] is None
    assert key["algorithm"] == "RSA"
    assert key["algorithmOid"] == "1.2.840.113549.1.1.1"
    assert key["curveOid"] is None
    assert key["keySize"] == 2048
    assert TIME_RE.match(key["createTime"]), key["createTime"]
    assert TIME_RE.match(key["attestTime"]), key["attestTime"]
    assert key["publicKey"].startswith("MIIBIj")  # DER SPKI of an RSA-2048 key
    assert key["addressTruncated"] is None
    assert key["policy"] is None
    assert body["attestationKeyName"] == "attestation-key"
    base64.b64decode(body["xmlSignature"], validate=True)

    attributes = key["attributes"]
    assert attributes["sign"] is True
    assert attributes["decrypt"] is False
    assert attributes["unwrap"] is False
    assert attributes["derive"] is False
    assert attributes["ekaSign"] is None
    assert attributes["sensitive"] is True
    assert attributes["alwaysSensitive"] is True
    assert attributes["extractable"] is False
    assert attributes["neverExtractable"] is True
    assert attributes["modifiable"] is True
    assert attributes["destroyable"] is True
    assert isinstance(attributes["copyable"], bool)


def test_attestation_xml_describes_the_key(walkthrough: dict[str, Any]) -> None:
    body = walkthrough["created"].json()
    xml: str = body["xml"]
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<private_key creation="generated">\n')
    assert f"\t<label>{walkthrough['label']}</label>\n" in xml
    assert "\t<algorithm>RSA</algorithm>\n" in xml
    assert f"\t<public_key>{body['json']['publicKey']}</public_key>\n" in xml
    assert f"\t<create_time>{body['json']['createTime']}</create_time>\n" in xml
    assert "\t\t<never_extractable>true</never_extractable>\n" in xml
    assert xml.endswith("\n")


def test_sign_response_is_a_single_signature(walkthrough: dict[str, Any]) -> None:
    response: httpx.Response = walkthrough["signed"]
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"signature"}
    assert len(base64.b64decode(body["signature"], validate=True)) == 256  # RSA-2048


@pytest.mark.subprocess
def test_signature_verifies_with_openssl(walkthrough: dict[str, Any], tmp_path: Path) -> None:
    public_pem = der_to_pem(walkthrough["created"].json()["json"]["publicKey"], tmp_path, "pub")
    (tmp_path / "data").write_bytes(base64.b64decode("UGF5bG9hZA=="))
    assert (tmp_path / "data").read_bytes() == b"Payload"
    (tmp_path / "sig").write_bytes(base64.b64decode(walkthrough["signed"].json()["signature"]))

    result = openssl(
        "dgst",
        "-sha224",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:28",
        "-sigopt",
        "rsa_mgf1_md:sha224",
        "-verify",
        public_pem,
        "-signature",
        "sig",
        "data",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verified OK" in result.stdout

    # and the same signature does not verify a different payload
    (tmp_path / "other").write_bytes(b"Payload!")
    result = openssl(
        "dgst",
        "-sha224",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:28",
        "-sigopt",
        "rsa_mgf1_md:sha224",
        "-verify",
        public_pem,
        "-signature",
        "sig",
        "other",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "Verified OK" not in result.stdout


@pytest.mark.subprocess
def test_attestation_signature_verifies_with_openssl(walkthrough: dict[str, Any], tmp_path: Path) -> None:
    attestation: httpx.Response = walkthrough["attestation"]
    assert attestation.status_code == 200, attestation.text
    attestation_json = attestation.json()["json"]
    assert attestation_json["label"] == "attestation-key"
    assert attestation_json["algorithm"] == "RSA"
    attestation_pem = der_to_pem(attestation_json["publicKey"], tmp_path, "att")

    body = walkthrough["created"].json()
    (tmp_path / "key.xml").write_bytes(body["xml"].encode("utf-8"))
    (tmp_path / "xmlsig.bin").write_bytes(base64.b64decode(body["xmlSignature"]))
    result = openssl(
        "dgst", "-sha256", "-verify", attestation_pem, "-signature", "xmlsig.bin", "key.xml", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verified OK" in result.stdout

    # one changed byte in the document breaks the attestation
    tampered = body["xml"].replace("<sign>true</sign>", "<sign>false</sign>")
    assert tampered != body["xml"]
    (tmp_path / "key.xml").write_bytes(tampered.encode("utf-8"))
    result = openssl(
        "dgst", "-sha256", "-verify", attestation_pem, "-signature", "xmlsig.bin", "key.xml", cwd=tmp_path
    )
    assert "Verified OK" not in result.stdout


@pytest.mark.subprocess
def test_attestation_key_signs_its_own_description(walkthrough: dict[str, Any], tmp_path: Path) -> None:
    body = walkthrough["attestation"].json()
    assert body["attestationKeyName"] == "attestation-key"
    attestation_pem = der_to_pem(body["json"]["publicKey"], tmp_path, "att")
    (tmp_path / "att.xml").write_bytes(body["xml"].encode("utf-8"))
    (tmp_path / "att.sig").write_bytes(base64.b64decode(body["xmlSignature"]))
    result = openssl(
        "dgst", "-sha256", "-verify", attestation_pem, "-signature", "att.sig", "att.xml", cwd=tmp_path
    )
    assert "Verified OK" in result.stdout, result.stdout + result.stderr
