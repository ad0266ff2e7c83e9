"""The approver app's files over HTTP: served at /approver/ with a strict Content-Security-Policy,
open without credentials, naming no other host, the vendored node-forge as its README records it
(the browser test, ``tests/browser/test_approver_app.py``, runs the app itself)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest

from hsmgate.api.approver_app import APPROVER_DIRECTORY
from tests.helpers import LiveServer, soft_settings

APPROVER_API_KEY = "approver-api-key-0123456789abcdef"
SCRIPTS = ("app.js", "protocol.js", "taskview.js", "token.js", "keystore.js", "util.js")
FILES = ("", "index.html", *SCRIPTS, "app.css", "vendor/forge.min.js", "vendor/LICENSE.node-forge")


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server that wants API keys of every role: the app's files must load without one."""
    settings = soft_settings(tmp_path_factory.mktemp("approver-app-files"), dev=False,
                             api_keys_approver=[APPROVER_API_KEY])
    with LiveServer(settings) as server, server.client() as client:
        yield client


def directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


@pytest.mark.parametrize("file", FILES)
def test_files_are_served_openly_with_a_strict_policy(http: httpx.Client, file: str) -> None:
    answer = http.get(f"/approver/{file}")
    assert answer.status_code == 200, answer.text
    policy = directives(answer.headers["content-security-policy"])
    assert policy == {
        "default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self'",
        "img-src": "'self' data:", "object-src": "'none'", "base-uri": "'none'", "frame-ancestors": "'none'",
        "form-action": "'none'",
    }
    assert "unsafe" not in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_the_page_has_no_inline_script_or_style_and_names_no_other_host(http: httpx.Client) -> None:
    page = http.get("/approver/").text
    assert re.findall(r"<script[^>]*>(?!</script>)", page) == []  # every script is a file
    assert "<style" not in page and not re.search(r"\s(style|on[a-z]+)=", page)  # no inline style or handler
    for name in ("index.html", *SCRIPTS, "app.css"):
        text = (APPROVER_DIRECTORY / name).read_text()
        assert "http://" not in text and "https://" not in text, name


def test_the_directory_without_slash_redirects_and_other_static_paths_do_not_serve_it(http: httpx.Client) -> None:
    answer = http.get("/approver")
    assert answer.status_code == 307 and answer.headers["location"] == "/approver/"
    assert http.get("/static/approver/index.html").status_code == 404  # only at /approver/, with its policy
    assert http.get("/approver/missing.js").status_code == 404
    # the files are open, the API behind them is not
    assert http.post("/v1/filteredAllApprovalTask", json={}).status_code == 401


def test_vendored_node_forge_is_the_recorded_build() -> None:
    readme = (APPROVER_DIRECTORY / "vendor" / "README.md").read_text()
    for name in ("forge.min.js", "LICENSE.node-forge"):
        digest = hashlib.sha256((APPROVER_DIRECTORY / "vendor" / name).read_bytes()).hexdigest()
        assert f"`{digest}`" in readme, name
    assert "node-forge@1.4.4" in readme
    assert "BSD" in (APPROVER_DIRECTORY / "vendor" / "LICENSE.node-forge").read_text()
