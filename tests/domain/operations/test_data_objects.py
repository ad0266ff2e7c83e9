"""Data objects (§3.1): POST /v1/dataObject, GET and DELETE /v1/dataObject/{name}."""

from __future__ import annotations

import os

import httpx

from tests.helpers import assert_tsb_error, b64, unb64, unique


def put(http: httpx.Client, name: str, value: bytes, **attributes: bool) -> httpx.Response:
    body: dict[str, object] = {"name": name, "value": b64(value)}
    if attributes:
        body["attributes"] = attributes
    return http.post("/v1/dataObject", json=body)


def test_create_read_replace_delete(http: httpx.Client) -> None:
    name = unique("obj")
    response = put(http, name, b"first")
    assert response.status_code == 201, response.text
    assert response.json() == {"name": name, "value": b64(b"first"),
                               "attributes": {"private": False, "modifiable": True, "destroyable": True}}
    assert unb64(http.get(f"/v1/dataObject/{name}").json()["value"]) == b"first"
    response = put(http, name, b"second")
    assert response.status_code == 200
    assert unb64(http.get(f"/v1/dataObject/{name}").json()["value"]) == b"second"
    assert http.delete(f"/v1/dataObject/{name}").status_code == 200
    body = assert_tsb_error(http.get(f"/v1/dataObject/{name}"), 653, 404)
    assert body["reason"] == "res.error.data.object.not.existent"
    assert_tsb_error(http.delete(f"/v1/dataObject/{name}"), 653, 404)


def test_private_object_is_encrypted_at_rest(http: httpx.Client, soft_server: object) -> None:
    name = unique("secret-obj")
    value = os.urandom(64 * 1024)  # the maximum
    response = put(http, name, value, private=True)
    assert response.status_code == 201, response.text
    assert response.json()["attributes"]["private"] is True
    assert unb64(http.get(f"/v1/dataObject/{name}").json()["value"]) == value
    db = soft_server.app.state.db  # type: ignore[attr-defined]
    from sqlalchemy import text
    with db.engine.connect() as connection:
        stored = connection.execute(text("SELECT value FROM data_objects WHERE name = :n"), {"n": name}).scalar_one()
    assert bytes(stored) != value and value[:32] not in bytes(stored)
    assert put(http, name, b"replaced").status_code == 200
    assert unb64(http.get(f"/v1/dataObject/{name}").json()["value"]) == b"replaced"


def test_attributes_and_limits(http: httpx.Client) -> None:
    fixed = unique("fixed")
    assert put(http, fixed, b"v", modifiable=False, destroyable=False).status_code == 201
    body = assert_tsb_error(put(http, fixed, b"w"), 615, 400)
    assert body["reason"] == "res.error.data.object.already.existing"
    assert_tsb_error(http.delete(f"/v1/dataObject/{fixed}"), 614, 400)
    assert unb64(http.get(f"/v1/dataObject/{fixed}").json()["value"]) == b"v"
    assert_tsb_error(put(http, unique("big"), b"x" * (64 * 1024 + 1)), 616, 400)
    assert_tsb_error(put(http, unique("empty"), b""), 616, 400)
    assert_tsb_error(http.post("/v1/dataObject", json={"name": "a/b", "value": b64(b"x")}), 610, 400)
