"""The record format: canonical JSON byte for byte as the standard library writes it (the form
docs/security.md tells an auditor to recompute), and the time text records keep."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta

from hsmgate.domain.audit.chain import canonical_json, now_text, record_hash

TRICKY = ["", "plain", 'quote " and \\ backslash', "slash /", "\x00\x01\x1f\x7f", "tab\tnew\nline\r",
          "\u2028\u2029\ufeff", "ümlaut", "日本語", "emoji \U0001f600", "</script>", "\\u0041"]


def standard(value: dict[str, object]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def test_canonical_json_is_the_standard_librarys_compact_sorted_form() -> None:
    generator = random.Random(7)
    alphabet = [chr(c) for c in range(0x300)] + ["\u2028", "\U0001f600", "\ufffd"]
    samples = list(TRICKY) + ["".join(generator.choice(alphabet) for _ in range(generator.randint(0, 20)))
                              for _ in range(5000)]
    for text in samples:
        record = {"seq": generator.randint(0, 2**62), "key_label": text, "error_code": None, "outcome": "ok",
                  "items": text, "b": 1, "a": text}
        assert canonical_json(record) == standard(record), repr(text)


def test_record_hash_is_sha256_of_the_standard_form() -> None:
    import hashlib

    record = {"seq": 3, "time": "2026-12-08T00:00:00.000001Z", "partition": "default", "principal": "p",
              "auth_method": "apiKey", "operation": "synchronousSign", "key_label": "k\u2028", "request_id": "r",
              "outcome": "ok", "error_code": None, "prev_hash": "0" * 64, "ska_request_id": None,
              "items": '[{"index":0}]'}
    hashed = {k: v for k, v in record.items() if k != "ska_request_id"}
    assert record_hash(record) == hashlib.sha256(standard(hashed)).hexdigest()


def test_now_text_is_utc_with_microseconds() -> None:
    before = datetime.now(UTC)
    text = now_text()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before - timedelta(microseconds=1) <= parsed <= after + timedelta(microseconds=1)
    assert now_text() >= text  # the same second's text is reused; times still follow each other
