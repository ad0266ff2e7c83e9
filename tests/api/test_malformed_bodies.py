"""Bodies beyond the JSON parser's limits are 400 TSB errors on every route, never a 500: an
integer of 5,000 digits (Python's int-parsing limit is 4,300), nesting 10,000 (and 300) levels
deep, an unpaired UTF-16 surrogate escape, bytes that are not UTF-8 — over real HTTP, on the key
operations (``api/operation_route.py``) and on ordinary FastAPI routes (``api/lenient_json.py``),
with and without the trailing comma that sends a body down the lenient path."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import LiveServer, unique

JSON = {"Content-Type": "application/json"}
ERROR_KEYS = {"errorCode", "reason", "message"}
PAYLOAD = base64.b64encode(b"malformed").decode()
DIGITS = "9" * 5000

#: Key operations (OperationRoute) and ordinary routes (TsbRoute → FastAPI's body handling).
OPERATION_ROUTES = ("/v1/synchronousSign", "/v1/verify", "/v1/synchronousSignBatch", "/v1/verifyBatch",
                    "/v1/encrypt")
ORDINARY_ROUTES = ("/v1/key", "/v1/key/import/plain", "/v1/dataObject", "/v1/approval",
                   "/v1/filteredSignApprovalTask")


def _sign_item(extra: str, label: str = "k") -> str:
    return f'{{"signKeyName": "{label}", "payload": "{PAYLOAD}", "signatureAlgorithm": "EDDSA", {extra}}}'


def _sign(item: str, end: str = "}") -> bytes:
    return ('{"signRequest": ' + item + end).encode()


#: name → body; each is refused before any field is looked at.
BODIES: dict[str, bytes] = {
    "integer of 5000 digits": _sign(_sign_item(f'"tagLength": {DIGITS}')),
    "integer of 5000 digits, trailing comma": _sign(_sign_item(f'"x": {DIGITS}'), ",}"),
    "arrays nested 10000 deep": b"[" * 10_000 + b"]" * 10_000,
    "objects nested 10000 deep": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "nested 300 deep in a field": b'{"signRequest": ' + b"[" * 300 + b"]" * 300 + b"}",
    "nested 10000 deep, trailing comma": b'{"signRequest": ' + b"[" * 10_000 + b"]" * 10_000 + b",}",
    "unpaired surrogate in a password": _sign(_sign_item('"keyPassword": "\\ud800"')),
    "not UTF-8": b'{"signRequest": {"signKeyName": "\xff\xfe"}}',
}


@pytest.fixture(scope="module")
def http(soft_server: LiveServer) -> Iterator[httpx.Client]:
    with soft_server.client() as client:
        yield client


def assert_invalid_json(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["errorCode"] == 621 and body["reason"] == "res.error.invalid.json", body
    assert body["message"].startswith("request body is not valid JSON: "), body


@pytest.mark.parametrize("path", OPERATION_ROUTES + ORDINARY_ROUTES)
@pytest.mark.parametrize("name", list(BODIES))
def test_a_body_beyond_the_parser_limits_is_621(http: httpx.Client, caplog: pytest.LogCaptureFixture,
                                                path: str, name: str) -> None:
    with caplog.at_level(logging.ERROR, logger="hsmgate"):
        assert_invalid_json(http.post(path, content=BODIES[name], headers=JSON))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "a malformed body is logged as a bug"


def test_a_key_password_with_an_unpaired_surrogate_is_refused_before_it_is_used(http: httpx.Client) -> None:
    """The password reached the key store's UTF-8 encoder (a 500) when a body was re-read leniently."""
    label = unique("surrogate")
    body = (f'{{"label": "{label}", "algorithm": "ED", "curveOid": "1.3.101.112", "password": "p\\udc00ssword-long", '
            '"attributes": {"sign": true, "decrypt": false, "unwrap": false, "destroyable": true}}')
    assert_invalid_json(http.post("/v1/key", content=body.encode(), headers=JSON))
    assert http.get(f"/v1/key/{label}/attributes").status_code == 404


def test_the_limits_leave_ordinary_bodies_alone(http: httpx.Client) -> None:
    """A valid surrogate pair, a long (but not too long) number, moderate nesting and a trailing
    comma are still accepted where they are allowed."""
    label = unique("limits")
    created = http.post("/v1/key", content=(
        f'{{"label": "{label}", "algorithm": "ED", "curveOid": "1.3.101.112", "unknown": [[[[[[1]]]]], {"1" * 4000}],'
        ' "attributes": {"sign": true, "decrypt": false, "unwrap": false, "destroyable": true},}').encode(),
        headers=JSON)
    assert created.status_code == 201, created.text
    item = _sign_item(f'"metaData": "{PAYLOAD}", "note": "\\ud83d\\ude00"', label)
    signed = http.post("/v1/synchronousSign", content=_sign(item, ",}"), headers=JSON)
    assert signed.status_code == 200, signed.text
