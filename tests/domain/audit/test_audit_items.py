"""Signature records list their signatures: one chained record per key of a request (a single
signature or a batch), whose ``items`` name each signature's algorithm, payload digest and outcome;
``audit verify`` and an independent recomputation of the hash cover them, and an edited item is
caught."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.auth.conftest import ec_key_body
from tests.domain.audit.test_audit import rows, run_cli, unprotect
from tests.helpers import LiveServer, soft_settings


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(soft_settings(tmp_path / "data", audit_checkpoint_interval=4)) as live:
        yield live


def independent_hash(record: dict[str, Any]) -> str:
    """The record hash as docs/security.md defines it, with hashlib and json only."""
    fields = ("seq", "time", "partition", "principal", "auth_method", "operation", "key_label", "request_id",
              "outcome", "error_code", "prev_hash")
    values = {name: record[name] for name in fields}
    values.update({name: record[name] for name in ("ska_request_id", "items") if record.get(name) is not None})
    return hashlib.sha256(json.dumps(values, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_batch_is_one_record_listing_every_signature(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    payloads = [b"first", b"second", b"third", b"fourth"]
    with server.client() as http:
        assert http.post("/v1/key", json=ec_key_body("batched")).status_code == 201
        items = [{"payload": b64(p), "signKeyName": "batched", "signatureAlgorithm": "SHA256_WITH_ECDSA"}
                 for p in payloads]
        items.insert(2, {"payload": b64(b"x"), "signKeyName": "batched", "signatureAlgorithm": "EDDSA"})  # not an EC one
        items.append({"payload": "not base64!", "signKeyName": "batched", "signatureAlgorithm": "SHA256_WITH_ECDSA"})
        answer = http.post("/v1/synchronousSignBatch", json={"signRequests": items}, headers={"X-Request-ID": "b-1"})
        assert answer.status_code == 200, answer.text
        code = answer.json()["results"][2]["errorCode"]
        assert code != 600 and answer.json()["results"][5]["errorCode"] == 600
        assert http.post("/v1/synchronousSign", json={"signRequest": items[0]}).status_code == 200

    signs = [r for r in rows(server) if r["operation"] == "synchronousSign"]
    assert len(signs) == 2  # the batch of five, then the single signature
    batch, single = signs
    assert (batch["request_id"], batch["key_label"], batch["outcome"]) == ("b-1", "batched", "error")
    listed = json.loads(batch["items"])
    assert [i["index"] for i in listed] == [0, 1, 2, 3, 4]  # item 5 never reached a key: a 600 of the wire
    for item, sent in zip(listed, items[:5], strict=True):
        assert item["algorithm"] == sent["signatureAlgorithm"]
        assert item["payloadSha256"] == hashlib.sha256(base64.b64decode(sent["payload"])).hexdigest()
    assert [(i["outcome"], i["errorCode"]) for i in listed] == [("ok", None)] * 2 + [("error", code)] + [("ok", None)] * 2
    assert json.loads(single["items"]) == [{"index": 0, "algorithm": "SHA256_WITH_ECDSA", "outcome": "ok",
                                            "payloadSha256": hashlib.sha256(b"first").hexdigest(), "errorCode": None}]
    assert all(independent_hash(r) == r["hash"] for r in rows(server))
    assert b64(b"first") not in json.dumps(rows(server))  # digests, never payloads

    verified = run_cli(server, monkeypatch, "audit", "verify")
    assert verified.exit_code == 0, verified.output

    unprotect(server)
    forged = batch["items"].replace('"outcome":"error"', '"outcome":"ok"')
    with server.app.state.db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET items = :items WHERE seq = :seq"),
                           {"items": forged, "seq": batch["seq"]})
    tampered = run_cli(server, monkeypatch, "audit", "verify")
    assert tampered.exit_code == 1
    assert f"record {batch['seq']}: was changed" in tampered.output
