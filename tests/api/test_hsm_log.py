"""``GET /v1/hsm/log`` and ``GET /v1/hsm/log/records`` over HTTP: the partition log answered from the
audit chain. Each returned record's hash is recomputed here with ``hashlib`` and ``json`` alone,
following docs/security.md (SHA-256 of the canonical JSON of the record's fields), and the
``prev_hash`` links are checked, as a client that does not trust hsmgate would."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import LiveServer, assert_tsb_error, b64, soft_settings, unique

TEXT_LINES = 5
PASSWORD = "Pa55-w0rd-never-logged"
ATTRIBUTES = {"sign": True, "decrypt": False, "unwrap": False, "extractable": False, "sensitive": True,
              "modifiable": True, "destroyable": True}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(soft_settings(tmp_path_factory.mktemp("hsm-log"), hsm_log_lines=TEXT_LINES)) as live:
        yield live


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def keys(http: httpx.Client) -> dict[str, str]:
    """Two keys, signed with several times (one signature with a wrong password: an error record)."""
    names = {"a": unique("log-a"), "b": unique("log-b")}
    for name in names.values():
        response = http.post("/v1/key", json={"label": name, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                              "password": list(PASSWORD), "attributes": ATTRIBUTES})
        assert response.status_code == 201, response.text
    for name, password, count in ((names["a"], PASSWORD, 3), (names["b"], PASSWORD, 2), (names["b"], "wrong", 1)):
        for _ in range(count):
            http.post("/v1/synchronousSign", json={"signRequest": {
                "payload": b64(b"log me"), "signKeyName": name, "keyPassword": list(password),
                "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
    return names


def recomputed_hash(record: dict[str, Any]) -> str:
    """The record hash as docs/security.md defines it, independently of hsmgate's code."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def all_records(http: httpx.Client, limit: int, **filters: str) -> list[dict[str, Any]]:
    """Every record the filters select, page by page through the cursor."""
    records: list[dict[str, Any]] = []
    after = 0
    while True:
        response = http.get("/v1/hsm/log/records", params={**filters, "after": after, "limit": limit})
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"records", "next"} and len(page["records"]) <= limit
        records += page["records"]
        if page["next"] is None:
            return records
        assert page["next"] == page["records"][-1]["seq"]
        after = page["next"]


def test_paged_records_form_a_chain_a_client_can_recompute(http: httpx.Client, keys: dict[str, str]) -> None:
    records = all_records(http, limit=3)
    assert len(records) >= 10
    previous_hash = "0" * 64
    for position, entry in enumerate(records, start=1):
        assert set(entry) == {"seq", "hash", "record"}
        assert entry["seq"] == position == entry["record"]["seq"]
        assert recomputed_hash(entry["record"]) == entry["hash"]
        assert entry["record"]["prev_hash"] == previous_hash
        previous_hash = entry["hash"]
    assert {"time", "partition", "principal", "auth_method", "operation", "key_label", "request_id",
            "outcome", "error_code"} <= set(records[0]["record"])
    assert all_records(http, limit=1000) == records  # paging changes nothing


def test_records_hold_no_secret(http: httpx.Client, keys: dict[str, str]) -> None:
    text = http.get("/v1/hsm/log/records", params={"limit": 1000}).text + http.get("/v1/hsm/log").text
    assert PASSWORD not in text and "wrong" not in text and b64(b"log me") not in text


def test_filters_select_by_key_operation_outcome_and_caller(http: httpx.Client, keys: dict[str, str]) -> None:
    signed_a = all_records(http, limit=2, keyName=keys["a"], operation="synchronousSign")
    assert len(signed_a) == 3
    assert all(r["record"]["key_label"] == keys["a"] and r["record"]["operation"] == "synchronousSign" for r in signed_a)
    assert all(recomputed_hash(r["record"]) == r["hash"] for r in signed_a)
    of_b = all_records(http, limit=100, keyName=keys["b"])
    # the wrong password: refused as checkKeyPassword, and the sign request's record lists the refused item
    assert [(r["record"]["operation"], r["record"]["error_code"]) for r in of_b if r["record"]["outcome"] == "error"] \
        == [("checkKeyPassword", 620), ("synchronousSign", 620)]
    principal = signed_a[0]["record"]["principal"]
    by_caller = all_records(http, limit=100, caller=principal)
    assert by_caller and all(r["record"]["principal"] == principal for r in by_caller)
    assert all_records(http, limit=100, caller=unique("nobody")) == []
    assert all_records(http, limit=100, keyName=unique("no-such-key")) == []


def test_time_range_is_from_inclusive_to_exclusive(http: httpx.Client, keys: dict[str, str]) -> None:
    records = all_records(http, limit=1000)
    middle = records[len(records) // 2]["record"]["time"]  # e.g. 2026-12-08T01:02:03.123456Z
    assert all_records(http, limit=1000, to=middle) == [r for r in records if r["record"]["time"] < middle]
    assert all_records(http, limit=1000, **{"from": middle}) == [r for r in records
                                                                  if r["record"]["time"] >= middle]
    naive_future = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert all_records(http, limit=1000, **{"from": naive_future}) == []
    offset = (datetime.now(UTC) + timedelta(days=1)).astimezone(timezone(timedelta(hours=5))).isoformat()
    assert all_records(http, limit=1000, to=offset) == all_records(http, limit=1000)
    assert all_records(http, limit=1000, to="0001-01-01T00:00:00+05:00") == []  # before year 1 in UTC
    assert all_records(http, limit=1000, **{"from": "9999-12-31T23:00:00-05:00"}) == []
    assert all_records(http, limit=1000, **{"from": "0001-01-01T00:00:00+05:00"}) == records


def test_the_text_log_is_the_last_records_one_line_each(http: httpx.Client, keys: dict[str, str]) -> None:
    response = http.get("/v1/hsm/log")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"log"}
    lines = body["log"].split("\n")
    last = all_records(http, limit=1000)[-TEXT_LINES:]
    assert len(lines) == TEXT_LINES
    for line, entry in zip(lines, last, strict=True):
        assert line.startswith(entry["record"]["time"] + " ")
        assert f" seq={entry['seq']} " in line and line.endswith(f" hash={entry['hash']}")
        assert f" operation={entry['record']['operation']} " in line


@pytest.mark.parametrize(("params", "field"), [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
                                               ({"after": -1}, "after"), ({"from": "yesterday"}, "from")])
def test_bad_parameters_are_600_naming_them(http: httpx.Client, params: dict[str, object], field: str) -> None:
    assert_tsb_error(http.get("/v1/hsm/log/records", params=params), 600, 400, naming=field)


def test_without_audit_the_log_is_611(tmp_path: Path) -> None:
    with LiveServer(soft_settings(tmp_path, audit_enabled=False)) as live, live.client() as client:
        for path in ("/v1/hsm/log", "/v1/hsm/log/records"):
            assert_tsb_error(client.get(path), 611, 400, naming="HSMGATE_AUDIT_ENABLED")


def test_only_the_service_role_reads_the_log_and_api_keys_never_appear(tmp_path: Path) -> None:
    service, operation = "service-key-" + unique("s"), "operation-key-" + unique("o")
    management = "management-key-" + unique("m")
    settings = soft_settings(tmp_path, api_keys_service=service, api_keys_key_operation=operation,
                             api_keys_key_management=management)
    with LiveServer(settings) as live, live.client() as client:
        label = unique("roles")
        assert client.post("/v1/key", headers={"X-API-KEY": management}, json={
            "label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7", "attributes": ATTRIBUTES,
        }).status_code == 201
        assert client.post("/v1/synchronousSign", headers={"X-API-KEY": operation}, json={"signRequest": {
            "payload": b64(b"x"), "signKeyName": label, "signatureAlgorithm": "SHA256_WITH_ECDSA"}}).status_code == 200
        for path in ("/v1/hsm/log", "/v1/hsm/log/records"):
            assert client.get(path).status_code == 401
            for key in (operation, management):
                assert_tsb_error(client.get(path, headers={"X-API-KEY": key}), 631, 401)  # the TSB's answer
        records = client.get("/v1/hsm/log/records", headers={"X-API-KEY": service},
                             params={"caller": "api-key:keyOperation#1"})
        assert records.status_code == 200, records.text
        (signed,) = records.json()["records"]
        assert signed["record"]["operation"] == "synchronousSign" and signed["record"]["auth_method"] == "api-key"
        text = client.get("/v1/hsm/log", headers={"X-API-KEY": service}).text
        assert "api-key:keyManagement#1" in text
        assert not any(key in text + records.text for key in (service, operation, management))
