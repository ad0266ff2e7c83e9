"""Trailing commas from TSB clients are tolerated; nothing else is."""

import json

import pytest

from hsmgate.api.lenient_json import drop_trailing_commas, loads_lenient


def test_go_client_certificate_import_body() -> None:
    assert loads_lenient(b'{"label": "x", "certificate": "MIIB",\n }') == {"label": "x", "certificate": "MIIB"}


def test_nested_and_array_commas() -> None:
    assert loads_lenient(b'{"a": [1, 2,], "b": {"c": 1,},}') == {"a": [1, 2], "b": {"c": 1}}


def test_commas_inside_strings_are_kept() -> None:
    assert drop_trailing_commas('{"a": ",}", "b": "x\\",]",}') == '{"a": ",}", "b": "x\\",]"}'


@pytest.mark.parametrize("body", [b"{bad", b'{"a": 1,,}', b"[,]", b"", b'{"a": 1'])
def test_other_syntax_errors_stay_errors(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_lenient(body)
