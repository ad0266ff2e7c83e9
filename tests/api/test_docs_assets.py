"""The documentation pages' files: served by hsmgate, shipped in the wheel, nothing from elsewhere
(the browser test, ``tests/browser/test_docs_pages.py``, checks the pages themselves)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import httpx
import pytest

from hsmgate.api.docs_pages import STATIC_DIRECTORY
from tests.helpers import LiveServer

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("/swagger-ui/index.html", "/redoc")


@pytest.fixture()
def http(soft_server: LiveServer) -> httpx.Client:
    return soft_server.client()


def test_every_vendored_file_is_package_data() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["hsmgate"]
    package = STATIC_DIRECTORY.parents[1]  # src/hsmgate
    files = [path.relative_to(package).as_posix() for path in STATIC_DIRECTORY.rglob("*") if path.is_file()]
    assert {"api/static/swagger-ui/swagger-ui-bundle.js", "api/static/redoc/redoc.standalone.js"} <= set(files)
    missing = [file for file in files if not any(fnmatch.fnmatch(file, glob) for glob in globs)]
    assert missing == [], "files under api/static/ that the wheel would leave out"


def test_licences_ship_beside_the_bundles() -> None:
    for directory in ("swagger-ui", "redoc"):
        assert (STATIC_DIRECTORY / directory / "LICENSE").stat().st_size > 500


@pytest.mark.parametrize("path", PAGES)
def test_pages_name_no_other_host(http: httpx.Client, path: str) -> None:
    page = http.get(path)
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text
    assert "/static/" in page.text


@pytest.mark.parametrize("path", PAGES)
def test_pages_forbid_other_origins(http: httpx.Client, path: str) -> None:
    policy = http.get(path).headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    assert all(source == "'self'" or source.startswith("'sha256-") for source in directives["script-src"].split())


@pytest.mark.parametrize("asset", ["swagger-ui/swagger-ui-bundle.js", "swagger-ui/swagger-ui.css",
                                   "swagger-ui/favicon-32x32.png", "redoc/redoc.standalone.js"])
def test_assets_are_served_as_vendored(http: httpx.Client, asset: str) -> None:
    answer = http.get(f"/static/{asset}")
    assert answer.status_code == 200
    assert answer.content == (STATIC_DIRECTORY / asset).read_bytes()
