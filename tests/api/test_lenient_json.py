"""Trailing commas from TSB clients are tolerated; nothing else is, the parser's limits included;
the comma removal is linear and agrees with a character-by-character reference."""

import json
import random
import time
from typing import Any

import pytest
from pydantic_core import from_json

from hsmgate.api.lenient_json import drop_trailing_commas, escape_control_characters, loads_lenient


def test_go_client_certificate_import_body() -> None:
    assert loads_lenient(b'{"label": "x", "certificate": "MIIB",\n }') == {"label": "x", "certificate": "MIIB"}


def test_nested_and_array_commas() -> None:
    assert loads_lenient(b'{"a": [1, 2,], "b": {"c": 1,},}') == {"a": [1, 2], "b": {"c": 1}}


def test_commas_inside_strings_are_kept() -> None:
    assert drop_trailing_commas(b'{"a": ",}", "b": "x\\",]",}') == b'{"a": ",}", "b": "x\\",]"}'


@pytest.mark.parametrize("body", [b"{bad", b'{"a": 1,,}', b"[,]", b"", b'{"a": 1', b"[1,,]", b'{"a": "\\ud800",}',
                                  b"[" * 300 + b"]" * 300, b"[" * 300 + b"1," + b"]" * 300,
                                  b"[%s,]" % (b"9" * 5000), b'{"a": "\xff",}'])
def test_other_syntax_errors_and_the_limits_stay_errors(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_lenient(body)


def reference_drop(text: str) -> str:
    """The original character loop (before the regex): the behaviour to keep."""
    out: list[str] = []
    in_string = escaped = False
    pending_comma: int | None = None
    last_significant = ""
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in "}]" and pending_comma is not None:
            del out[pending_comma]
        if not char.isspace():
            pending_comma = None
        if char == "," and last_significant not in ("", "[", "{", ","):
            pending_comma = len(out)
        elif char == '"':
            in_string = True
        if not char.isspace():
            last_significant = char
        out.append(char)
    return "".join(out)


def outcome(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", from_json(body)
    except ValueError:
        return "error", None


def random_value(rng: random.Random, depth: int = 0) -> str:
    kind = rng.choice("sn" if depth > 3 else "snoa")
    space = rng.choice(["", " ", "\n ", "\t"])
    trailing = "," + rng.choice(["", " ", "\n"]) if rng.random() < 0.4 else ""
    if kind == "s":
        return '"' + rng.choice(["a", ",]", ",}", '\\"', "\\\\", "x, }", "\\u00e9", "]"]) + '"'
    if kind == "n":
        return rng.choice(["1", "-2.5", "true", "null"])
    if kind == "o":
        items = [f'"k{i}":{space}{random_value(rng, depth + 1)}' for i in range(rng.randint(0, 3))]
        return "{" + f",{space}".join(items) + (trailing if items else "") + space + "}"
    items = [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return "[" + f",{space}".join(items) + (trailing if items else "") + space + "]"


def test_the_regex_agrees_with_the_character_loop() -> None:
    """Generated documents with trailing commas, and random one-character damage to them: both
    removals give the same parse result (the same value, or both not JSON)."""
    rng = random.Random(20261201)
    damage = list(',[]{}"\\: x')
    parsed = 0
    for _ in range(4000):
        text = random_value(rng)
        if rng.random() < 0.5:
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(damage) + text[at + rng.randint(0, 1):]
        expected = outcome(reference_drop(text).encode())
        assert outcome(drop_trailing_commas(text.encode())) == expected, text
        parsed += expected[0] == "ok"
    assert parsed > 1000  # the comparison covered many documents that do parse


def test_removal_is_linear_even_for_an_unterminated_string() -> None:
    """A string left open before thousands of escaped quotes must not make every later quote
    scan to the end (quadratic): 1 MB takes a fraction of a CPU second; quadratic, it would take
    hours, so the bound is a guard against that, not a speed measurement."""
    body = b'[1,]"' + b'\\"' * 500_000
    started = time.process_time()
    drop_trailing_commas(body)
    assert time.process_time() - started < 20.0


def test_raw_control_characters_inside_strings_are_accepted() -> None:
    pem = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\tAA==\r\n-----END CERTIFICATE REQUEST-----\n"
    body = ('{"certificateSigningRequest": "' + pem + '", "x": "\x00\x1f"}').encode()
    assert loads_lenient(body) == {"certificateSigningRequest": pem, "x": "\x00\x1f"}
    assert loads_lenient(body.replace(b"}", b",\n}")) == {"certificateSigningRequest": pem, "x": "\x00\x1f"}
    assert escape_control_characters(b'["a\nb", "\\\\\n"]') == b'["a\\u000ab", "\\\\\\u000a"]'


@pytest.mark.parametrize("body", [b'{\x01"a": 1}', b'{"a": 1\x0b}', b'{"a": "x"\x00}', b'["\\\n"]'])
def test_raw_control_characters_outside_strings_or_escaped_stay_errors(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_lenient(body)


def test_escaping_is_linear() -> None:
    """A million raw newlines: a fraction of a CPU second linearly, hours if quadratic (the bound
    guards against that; it measures no speed)."""
    body = b'["' + b"\n" * 1_000_000 + b'"]'
    started = time.process_time()
    assert loads_lenient(body) == ["\n" * 1_000_000]
    assert time.process_time() - started < 20.0
