"""Key management over HTTP: create every key type, describe, list, delete, validation errors, and
persistence across a restart. Every created key's attestation is verified with ``cryptography``
against the attestation key's public key."""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from hsmgate.app import create_app
from hsmgate.domain.algorithms import CURVES
from hsmgate.hsm.base import KeyAttributes, KeySpec, KeyType
from hsmgate.hsm.soft import SoftPartition
from hsmgate.hsm.softcrypto import EC_CURVES
from hsmgate.settings import ConfigError
from hsmgate.store.database import Database
from hsmgate.store.soft_keys import SoftKeyRepository
from tests.helpers import LiveServer, assert_tsb_error, soft_settings, unique

SIGN = {"sign": True, "decrypt": False, "unwrap": False, "destroyable": True}
CIPHER = {"sign": False, "decrypt": True, "unwrap": True, "destroyable": True}
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

RSA_OID = "1.2.840.113549.1.1.1"
DSA_OID = "1.2.840.10040.4.1"
EC_OID = "1.2.840.10045.2.1"
ED25519_OID = "1.3.101.112"
ED448_OID = "1.3.101.113"

CRYPTOGRAPHY_CURVE_NAMES = {
    "secp224r1": "secp224r1",
    "secp256k1": "secp256k1",
    "secp256r1": "secp256r1",
    "secp384r1": "secp384r1",
    "secp521r1": "secp521r1",
    "brainpool256r1": "brainpoolP256r1",
    "brainpool384r1": "brainpoolP384r1",
    "brainpool512r1": "brainpoolP512r1",
}


@pytest.fixture(scope="module")
def attestation_public_key(http: httpx.Client) -> rsa.RSAPublicKey:
    response = http.get("/v1/key/attestation-key/attributes")
    assert response.status_code == 200, response.text
    public = serialization.load_der_public_key(base64.b64decode(response.json()["json"]["publicKey"]))
    assert isinstance(public, rsa.RSAPublicKey)
    return public


def assert_attested(body: dict[str, Any], attestation_public: rsa.RSAPublicKey) -> None:
    """xmlSignature is RSASSA-PKCS1-v1_5/SHA-256 over the exact UTF-8 xml bytes."""
    assert body["attestationKeyName"] == "attestation-key"
    signature = base64.b64decode(body["xmlSignature"], validate=True)
    attestation_public.verify(signature, body["xml"].encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())


def create(http: httpx.Client, label: str | None = None, **fields: Any) -> httpx.Response:
    body = {"label": label or unique("key"), **fields}
    body.setdefault("attributes", SIGN)
    return http.post("/v1/key", json=body)


# ---------------------------------------------------------------------------------------------
# creation of every key type


def _asym(
    case_id: str,
    request: dict[str, Any],
    algorithm: str,
    oid: str,
    curve: str | None,
    size: int | None,
    check: Any,
    *,
    slow: bool = False,
) -> Any:
    return pytest.param(request, algorithm, oid, curve, size, check, SIGN, id=case_id,
                        marks=[pytest.mark.slow] if slow else [])


def _secret(
    case_id: str,
    request: dict[str, Any],
    algorithm: str,
    oid: str,
    size: int,
    attributes: dict[str, Any] = CIPHER,
) -> Any:
    return pytest.param(request, algorithm, oid, None, size, None, attributes, id=case_id)


def _rsa(bits: int) -> Any:
    def check(public: Any) -> None:
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == bits
        assert public.public_numbers().e == 65537

    return check


def _dsa(bits: int) -> Any:
    def check(public: Any) -> None:
        assert isinstance(public, dsa.DSAPublicKey) and public.key_size == bits

    return check


def _ec(curve_name: str) -> Any:
    def check(public: Any) -> None:
        assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == curve_name

    return check


def _ed(kind: type) -> Any:
    def check(public: Any) -> None:
        assert isinstance(public, kind)

    return check


CREATE_CASES = [
    *(
        _asym(f"RSA-{n}", {"algorithm": "RSA", "keySize": n}, "RSA", RSA_OID, None, n, _rsa(n))
        for n in (2048, 3072, 4096)
    ),
    *(
        _asym(f"DSA-{n}", {"algorithm": "DSA", "keySize": n}, "DSA", DSA_OID, None, n, _dsa(n),
              slow=n >= 3072)  # DSA domain parameters of 3072 bits take seconds to generate
        for n in (2048, 3072)
    ),
    *(
        _asym(
            f"EC-{CURVES[oid].name}",
            {"algorithm": "EC", "curveOid": oid},
            "EC",
            EC_OID,
            oid,
            None,
            _ec(CRYPTOGRAPHY_CURVE_NAMES[CURVES[oid].name]),
        )
        for oid in EC_CURVES
    ),
    _asym(
        "ED-Ed25519",
        {"algorithm": "ED", "curveOid": ED25519_OID},
        "ED",
        ED25519_OID,
        ED25519_OID,
        None,
        _ed(ed25519.Ed25519PublicKey),
    ),
    _asym(
        "ED-Ed448",
        {"algorithm": "ED", "curveOid": ED448_OID},
        "ED",
        ED448_OID,
        ED448_OID,
        None,
        _ed(ed448.Ed448PublicKey),
    ),
    *(
        _secret(f"AES-{n}", {"algorithm": "AES", "keySize": n}, "AES", "1.0.18033.3.2.1", n)
        for n in (128, 192, 256)
    ),
    _secret(
        "ChaCha20", {"algorithm": "ChaCha20", "keySize": 256}, "ChaCha20", "1.2.840.113549.1.9.16.3.18", 256
    ),
    *(
        _secret(f"Camellia-{n}", {"algorithm": "Camellia", "keySize": n}, "Camellia", "1.0.18033.3.2.2", n)
        for n in (128, 192, 256)
    ),
    _secret("TDEA", {"algorithm": "TDEA"}, "TDEA", "1.0.18033.3.1.1", 192),
    *(
        _secret(
            f"HMACSHA{n}",
            {"algorithm": f"HMACSHA{n}"},
            f"HMACSHA{n}",
            f"1.2.840.113549.2.{oid}",
            bits,
            {"sign": True, "decrypt": False, "unwrap": False, "destroyable": True},
        )
        for n, oid, bits in ((1, 7, 160), (224, 8, 224), (256, 9, 256), (384, 10, 384), (512, 11, 512))
    ),
]


@pytest.mark.parametrize(
    ("request_fields", "algorithm", "oid", "curve", "size", "check_public", "attributes"), CREATE_CASES
)
def test_create_key(
    http: httpx.Client,
    attestation_public_key: rsa.RSAPublicKey,
    request_fields: dict[str, Any],
    algorithm: str,
    oid: str,
    curve: str | None,
    size: int | None,
    check_public: Any,
    attributes: dict[str, Any],
) -> None:
    label = unique(f"create-{algorithm}")
    response = create(http, label, **request_fields, attributes=attributes)
    assert response.status_code == 201, response.text
    body = response.json()
    assert {"xml", "json", "xmlSignature", "attestationKeyName"} <= body.keys()
    key = body["json"]
    assert key["label"] == label
    assert key["algorithm"] == algorithm
    assert key["algorithmOid"] == oid
    assert key["curveOid"] == curve
    assert key["keySize"] == size
    assert TIME_RE.match(key["createTime"]) and TIME_RE.match(key["attestTime"])
    assert key["policy"] is None and key["addressTruncated"] is None
    for name, value in attributes.items():
        assert key["attributes"][name] is value, name
    assert key["attributes"]["alwaysSensitive"] is True
    assert key["attributes"]["neverExtractable"] is True

    xml: str = body["xml"]
    if check_public is not None:
        der = base64.b64decode(key["publicKey"], validate=True)
        public = serialization.load_der_public_key(der)  # a parseable SubjectPublicKeyInfo …
        check_public(public)  # … of the requested type and size
        assert (
            public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            == der
        )
        assert '<private_key creation="generated">' in xml
        assert f"\t<public_key>{key['publicKey']}</public_key>\n" in xml
    else:
        assert key["publicKey"] is None
        assert '<secret_key creation="generated">' in xml
        assert "<public_key>" not in xml
    assert f"\t<algorithm>{algorithm}</algorithm>\n" in xml
    assert f"\t<algorithm_oid>{oid}</algorithm_oid>\n" in xml
    assert_attested(body, attestation_public_key)


@pytest.mark.parametrize(
    ("sensitive", "extractable"),
    [
        pytest.param(True, False, id="sensitive-not-extractable"),
        pytest.param(False, False, id="not-sensitive"),
        pytest.param(True, True, id="extractable"),
        pytest.param(False, True, id="not-sensitive-extractable"),
    ],
)
def test_history_attributes_follow_creation(
    http: httpx.Client, attestation_public_key: rsa.RSAPublicKey, sensitive: bool, extractable: bool
) -> None:
    response = create(
        http,
        algorithm="AES",
        keySize=128,
        attributes={**CIPHER, "sensitive": sensitive, "extractable": extractable},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    attributes = body["json"]["attributes"]
    assert attributes["sensitive"] is sensitive
    assert attributes["extractable"] is extractable
    assert attributes["alwaysSensitive"] is sensitive
    assert attributes["neverExtractable"] is (not extractable)
    assert f"<always_sensitive>{str(sensitive).lower()}</always_sensitive>" in body["xml"]
    assert f"<never_extractable>{str(not extractable).lower()}</never_extractable>" in body["xml"]
    assert_attested(body, attestation_public_key)


def test_attestation_signature_is_bound_to_the_document(
    http: httpx.Client, attestation_public_key: rsa.RSAPublicKey
) -> None:
    body = create(http, algorithm="EC", curveOid="1.2.840.10045.3.1.7").json()
    assert_attested(body, attestation_public_key)
    forged = {
        **body,
        "xml": body["xml"].replace("<destroyable>true</destroyable>", "<destroyable>false</destroyable>"),
    }
    assert forged["xml"] != body["xml"]
    with pytest.raises(InvalidSignature):
        assert_attested(forged, attestation_public_key)


# ---------------------------------------------------------------------------------------------
# creation refused


def test_duplicate_label_is_608(http: httpx.Client) -> None:
    label = unique("dup")
    assert create(http, label, algorithm="AES", keySize=128, attributes=CIPHER).status_code == 201
    assert_tsb_error(create(http, label, algorithm="AES", keySize=128, attributes=CIPHER), 608, 400)
    assert_tsb_error(create(http, label, algorithm="RSA", keySize=2048), 608, 400)


@pytest.mark.parametrize(
    ("fields", "status", "code", "naming"),
    [
        pytest.param({"algorithm": "FOO"}, 400, 600, "'algorithm'", id="unknown-algorithm"),
        pytest.param({"algorithm": "RSA", "keySize": 1000}, 400, 603, "keySize", id="rsa-1000"),
        pytest.param(
            {"algorithm": "AES", "keySize": 512, "attributes": CIPHER}, 400, 603, "keySize", id="aes-512"
        ),
        pytest.param({"algorithm": "EC"}, 400, 600, "curveOid", id="ec-without-curve"),
        pytest.param({"algorithm": "EC", "curveOid": "1.2.3.4"}, 400, 600, "curveOid", id="ec-unknown-curve"),
        pytest.param({"algorithm": "EC", "curveOid": "1.3.132.0.32"}, 400, 613, None, id="secp224k1"),
        pytest.param(
            {"algorithm": "EC", "curveOid": "1.2.250.1.223.101.256.1"}, 400, 613, None, id="frp256v1"
        ),
        pytest.param({"algorithm": "XMSS-SHA256_10_256"}, 400, 613, None, id="xmss-not-implemented"),
        pytest.param(
            {"algorithm": "RSA", "attributes": {"decrypt": False, "unwrap": False}},
            400,
            600,
            "'attributes.sign'",
            id="missing-sign",
        ),
        pytest.param(
            {"algorithm": "RSA", "attributes": {"sign": False, "decrypt": False, "unwrap": False}},
            400,
            606,
            None,
            id="no-usage",
        ),
        pytest.param({"algorithm": "RSA", "label": "a/b"}, 400, 610, None, id="slash-in-label"),
        pytest.param({"algorithm": "RSA", "policy": {"ruleUse": None}}, 400, 600, "policy.keyStatus", id="policy-without-key-status"),
        pytest.param(
            {"algorithm": "EC", "curveOid": "1.3.132.0.10", "addressFormat": {"format": "ETH"}},
            400,
            630,
            None,
            id="address-format-without-policy",
        ),
        pytest.param({"algorithm": "RSA", "label": ""}, 400, 600, "label", id="empty-label"),
        pytest.param({"algorithm": "RSA", "attributes": None}, 400, 600, "attributes", id="null-attributes"),
    ],
)
def test_create_refused(
    http: httpx.Client, fields: dict[str, Any], status: int, code: int, naming: str | None
) -> None:
    fields = dict(fields)
    label = fields.pop("label") if "label" in fields else unique("refused")
    body = {"label": label, **fields}
    body.setdefault("attributes", SIGN)
    response = http.post("/v1/key", json=body)
    assert_tsb_error(response, code, status, naming=naming)
    if label:
        assert label not in http.get("/v1/key").json(), "a refused key must not be created"


@pytest.mark.parametrize(
    "label",
    [
        pytest.param("pay\u200bments", id="zero-width-space"),
        pytest.param("invoice\u202egpj.exe", id="right-to-left-override"),
        pytest.param("a\u2066b\u2069", id="bidi-isolate"),
        pytest.param("key\u0085", id="c1-next-line"),
        pytest.param("key\u2028two", id="line-separator"),
        pytest.param("\ufeffkey", id="byte-order-mark"),
        pytest.param("cafe\u0301", id="not-nfc"),
        pytest.param("key\x1b[31m", id="ansi-escape"),
    ],
)
def test_labels_that_do_not_read_as_what_they_are_are_refused(http: httpx.Client, label: str) -> None:
    body = assert_tsb_error(create(http, label, algorithm="EC", curveOid="1.2.840.10045.3.1.7"), 610, 400,
                            naming="'label'")
    assert label not in http.get("/v1/key").json()
    if label.startswith("cafe"):
        assert "NFC" in body["message"]
        nfc = unique("caf\u00e9")  # the composed spelling is fine
        assert create(http, nfc, algorithm="EC", curveOid="1.2.840.10045.3.1.7").status_code == 201
    data_object = http.post("/v1/dataObject", json={"name": label, "value": base64.b64encode(b"x").decode()})
    assert_tsb_error(data_object, 610, 400, naming="'name'")


def test_a_key_with_such_a_label_made_elsewhere_can_still_be_described_and_deleted(
        soft_server: LiveServer, http: httpx.Client) -> None:
    """Keys made before the stricter rule (or on the token by other tools) stay manageable."""
    from hsmgate.hsm.base import KeyAttributes, KeySpec, KeyType

    label = unique("legacy\u200b")
    partition = soft_server.app.state.gateway.services(soft_server.settings.partition).partition
    partition.generate(label, KeySpec(KeyType.EC, curve_oid="1.2.840.10045.3.1.7"),
                       KeyAttributes(sign=True, decrypt=False, unwrap=False, destroyable=True))
    assert http.get(f"/v1/key/{label}/attributes").status_code == 200
    assert http.delete(f"/v1/key/{label}").status_code == 200
    assert label not in http.get("/v1/key").json()


# ---------------------------------------------------------------------------------------------
# list, describe


def test_list_and_describe(http: httpx.Client, attestation_public_key: rsa.RSAPublicKey) -> None:
    created = create(http, algorithm="EC", curveOid="1.3.132.0.34").json()
    label = created["json"]["label"]

    listed = http.get("/v1/key")
    assert listed.status_code == 200
    labels = listed.json()
    assert isinstance(labels, list) and all(isinstance(x, str) for x in labels)
    assert "attestation-key" in labels and label in labels

    by_post = http.post("/v1/key/attributes", json={"label": label})
    by_get = http.get(f"/v1/key/{label}/attributes")
    for response in (by_post, by_get):
        assert response.status_code == 200, response.text
        body = response.json()
        assert_attested(body, attestation_public_key)
        assert TIME_RE.match(body["json"]["attestTime"])
        # identical to the creation response except for the attestation time
        assert {**body["json"], "attestTime": None} == {**created["json"], "attestTime": None}
        strip = re.compile(r"<attest_time>[^<]*</attest_time>")
        assert strip.sub("", body["xml"]) == strip.sub("", created["xml"])
    assert {**by_post.json()["json"], "attestTime": None} == {**by_get.json()["json"], "attestTime": None}


def test_describe_unknown_key_is_650(http: httpx.Client) -> None:
    label = unique("nope")
    for response in (
        http.get(f"/v1/key/{label}/attributes"),
        http.post("/v1/key/attributes", json={"label": label}),
    ):
        body = assert_tsb_error(response, 650, 404)
        assert body["reason"] == "res.error.key.not.existent"
        assert label in body["message"]


# ---------------------------------------------------------------------------------------------
# delete


@pytest.mark.parametrize("form", ["DELETE", "deleteKey"])
def test_delete_destroyable_key(http: httpx.Client, form: str) -> None:
    label = create(http, algorithm="AES", keySize=256, attributes=CIPHER).json()["json"]["label"]

    def delete() -> httpx.Response:
        if form == "DELETE":
            return http.delete(f"/v1/key/{label}")
        return http.post("/v1/key/deleteKey", json={"label": label})

    assert delete().status_code == 200
    assert label not in http.get("/v1/key").json()
    assert_tsb_error(http.get(f"/v1/key/{label}/attributes"), 650, 404)
    assert_tsb_error(delete(), 650, 404)
    # the label is free again
    assert create(http, label, algorithm="AES", keySize=128, attributes=CIPHER).status_code == 201


@pytest.mark.parametrize("form", ["DELETE", "deleteKey"])
@pytest.mark.parametrize("destroyable", [False, None], ids=["destroyable-false", "destroyable-absent"])
def test_delete_refused_for_non_destroyable_key(
    http: httpx.Client, form: str, destroyable: bool | None
) -> None:
    attributes = {"sign": True, "decrypt": False, "unwrap": False}
    if destroyable is not None:
        attributes["destroyable"] = destroyable
    created = create(http, algorithm="EC", curveOid="1.2.840.10045.3.1.7", attributes=attributes)
    assert created.status_code == 201
    assert created.json()["json"]["attributes"]["destroyable"] is False
    label = created.json()["json"]["label"]
    if form == "DELETE":
        response = http.delete(f"/v1/key/{label}")
    else:
        response = http.post("/v1/key/deleteKey", json={"label": label})
    body = assert_tsb_error(response, 701, 400)
    assert body["message"].startswith("KEY_FUNCTION_NOT_PERMITTED")
    assert label in http.get("/v1/key").json()
    assert http.get(f"/v1/key/{label}/attributes").status_code == 200


def test_attestation_key_cannot_be_deleted(
    http: httpx.Client, attestation_public_key: rsa.RSAPublicKey
) -> None:
    body = assert_tsb_error(http.delete("/v1/key/attestation-key"), 614, 400)
    assert "internal" in body["message"]
    body = assert_tsb_error(http.post("/v1/key/deleteKey", json={"label": "attestation-key"}), 614, 400)
    assert "internal" in body["message"]
    # still there and still attesting
    assert "attestation-key" in http.get("/v1/key").json()
    assert_attested(
        create(http, algorithm="AES", keySize=128, attributes=CIPHER).json(), attestation_public_key
    )


def test_delete_unknown_key_is_650(http: httpx.Client) -> None:
    assert_tsb_error(http.delete(f"/v1/key/{unique('nope')}"), 650, 404)
    assert_tsb_error(http.post("/v1/key/deleteKey", json={"label": unique("nope")}), 650, 404)


# ---------------------------------------------------------------------------------------------
# persistence


def _sign(client: httpx.Client, label: str, algorithm: str, payload: bytes) -> httpx.Response:
    return client.post(
        "/v1/synchronousSign",
        json={
            "signRequest": {
                "payload": base64.b64encode(payload).decode(),
                "signKeyName": label,
                "signatureAlgorithm": algorithm,
            }
        },
    )


def test_keys_survive_a_restart(tmp_path: Path) -> None:
    master_key = base64.b64encode(secrets.token_bytes(32)).decode()
    settings = soft_settings(tmp_path / "data", master_key=master_key)
    with LiveServer(settings) as first, first.client() as http:
        rsa_key = create(http, algorithm="RSA", keySize=2048).json()["json"]
        ec_key = create(http, algorithm="EC", curveOid="1.3.132.0.10").json()["json"]
        aes_key = create(http, algorithm="AES", keySize=256, attributes=CIPHER).json()["json"]
        attestation_before = http.get("/v1/key/attestation-key/attributes").json()["json"]
        labels_before = set(http.get("/v1/key").json())

    with (
        LiveServer(soft_settings(tmp_path / "data", master_key=master_key)) as second,
        second.client() as http,
    ):
        assert set(http.get("/v1/key").json()) == labels_before
        assert {rsa_key["label"], ec_key["label"], aes_key["label"], "attestation-key"} <= labels_before
        attestation = http.get("/v1/key/attestation-key/attributes").json()["json"]
        assert attestation["publicKey"] == attestation_before["publicKey"], "the attestation key is kept"
        attestation_public = serialization.load_der_public_key(base64.b64decode(attestation["publicKey"]))
        assert isinstance(attestation_public, rsa.RSAPublicKey)

        for key in (rsa_key, ec_key, aes_key):
            described = http.get(f"/v1/key/{key['label']}/attributes")
            assert described.status_code == 200, described.text
            assert {**described.json()["json"], "attestTime": None} == {**key, "attestTime": None}
            assert_attested(described.json(), attestation_public)

        payload = b"after the restart"
        response = _sign(http, rsa_key["label"], "SHA256_WITH_RSA", payload)
        assert response.status_code == 200, response.text
        public = serialization.load_der_public_key(base64.b64decode(rsa_key["publicKey"]))
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(
            base64.b64decode(response.json()["signature"]), payload, padding.PKCS1v15(), hashes.SHA256()
        )

        response = _sign(http, ec_key["label"], "SHA256_WITH_ECDSA", payload)
        assert response.status_code == 200, response.text
        ec_public = serialization.load_der_public_key(base64.b64decode(ec_key["publicKey"]))
        assert isinstance(ec_public, ec.EllipticCurvePublicKey)
        ec_public.verify(base64.b64decode(response.json()["signature"]), payload, ec.ECDSA(hashes.SHA256()))


def test_other_master_key_cannot_use_the_keys(tmp_path: Path) -> None:
    """Keys sealed under one master key are unusable under another: hsmgate does not start under it
    (tests/hsm/test_master_key.py), and a key sealed under another master key (copied in from
    elsewhere) is described and deleted from its record, while its use is a clean TSB error, not a 500."""
    settings = soft_settings(tmp_path / "data", master_key=base64.b64encode(secrets.token_bytes(32)).decode())
    with LiveServer(settings) as first, first.client() as http:
        label = create(http, algorithm="EC", curveOid="1.2.840.10045.3.1.7").json()["json"]["label"]

    other_key = secrets.token_bytes(32)
    other = soft_settings(tmp_path / "data", master_key=base64.b64encode(other_key).decode())
    with pytest.raises(ConfigError, match="master key"):
        create_app(other)

    db = Database(settings.resolved_database_url)
    foreign = SoftPartition("default", repository=SoftKeyRepository(db, "default"), master_key=other_key)
    foreign.generate("foreign-key", KeySpec(KeyType.EC, curve_oid="1.2.840.10045.3.1.7"),
                     KeyAttributes(sign=True, destroyable=True))
    db.dispose()
    with LiveServer(settings) as second, second.client() as http:
        assert {label, "foreign-key"} <= set(http.get("/v1/key").json())
        assert_tsb_error(_sign(http, "foreign-key", "SHA256_WITH_ECDSA", b"payload"), 701, 503, naming="master key")
        assert http.get("/v1/key/foreign-key/attributes").status_code == 200
        assert http.delete("/v1/key/foreign-key").status_code == 200
        assert "foreign-key" not in http.get("/v1/key").json()
        assert _sign(http, label, "SHA256_WITH_ECDSA", b"payload").status_code == 200


def test_id_is_what_the_caller_gave_else_null(http: httpx.Client) -> None:
    """``json.id`` (and the XML ``<id>``) is the ``id`` of the creating request, kept by hsmgate;
    keys created without one, and keys that came in by import, read null."""
    with_id, without = unique("id-given"), unique("id-none")
    created = http.post("/v1/key", json={"label": with_id, "id": "caller-chosen id", "algorithm": "EC",
                                         "curveOid": "1.2.840.10045.3.1.7", "attributes": SIGN})
    assert created.status_code == 201, created.text
    for body in (created.json(), http.post("/v1/key/attributes", json={"label": with_id}).json()):
        assert body["json"]["id"] == "caller-chosen id" and "\t<id>caller-chosen id</id>\n" in body["xml"]
    created = http.post("/v1/key", json={"label": without, "algorithm": "AES", "keySize": 128, "attributes": CIPHER})
    assert created.status_code == 201, created.text
    for body in (created.json(), http.get(f"/v1/key/{without}/attributes").json()):
        assert body["json"]["id"] is None and "<id>" not in body["xml"]
    # a key deleted and created again under its label does not inherit the old id
    assert http.delete(f"/v1/key/{with_id}").status_code == 200
    again = http.post("/v1/key", json={"label": with_id, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                       "attributes": SIGN})
    assert again.status_code == 201 and again.json()["json"]["id"] is None


def test_change_attributes_is_refused_with_611(http: httpx.Client) -> None:
    """``PATCH /v1/key/changeAttributes``: its body is in no public source (wave-2 reference §5.4),
    so hsmgate refuses it (611) rather than guess which fields rename or harden a key — and changes
    nothing."""
    label = unique("no-change")
    assert http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                      "attributes": SIGN}).status_code == 201
    before = http.post("/v1/key/attributes", json={"label": label}).json()["json"]
    for body in ({"label": label, "newLabel": unique("renamed")}, {"label": label, "attributes": {"sensitive": True}},
                 None):
        response = http.patch("/v1/key/changeAttributes", json=body)
        assert_tsb_error(response, 611, 400)
        assert "changeAttributes" in response.json()["message"]
    after = http.post("/v1/key/attributes", json={"label": label}).json()["json"]
    assert {k: v for k, v in after.items() if k != "attestTime"} == \
        {k: v for k, v in before.items() if k != "attestTime"}
