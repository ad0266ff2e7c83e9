"""Swagger UI and ReDoc in a real browser (Debian's headless Chromium driven by Playwright), with
every request to another host aborted: the pages must work from hsmgate's own files alone."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.helpers import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]  # Playwright starts its driver and Chromium

#: Debian's package (``make test`` installs it); Playwright's own browser download is not used.
CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


class OfflinePage:
    """A page on which every request to a host other than the server's is aborted and noted."""

    def __init__(self, browser: Browser, server: LiveServer) -> None:
        self.origin = urlsplit(server.url).netloc
        self.context = browser.new_context()
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.left_host: list[str] = []
        self.errors: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _route(self, route: Route) -> None:
        if urlsplit(route.request.url).netloc == self.origin:
            route.continue_()
        else:
            self.left_host.append(route.request.url)
            route.abort()


@pytest.fixture()
def offline(browser: Browser, soft_server: LiveServer) -> Iterator[OfflinePage]:
    page = OfflinePage(browser, soft_server)
    yield page
    page.context.close()


def rendered_operation_count(server: LiveServer) -> int:
    """How many operation blocks Swagger UI draws: one per operation and tag."""
    document = httpx.get(f"{server.url}/v3/api-docs", timeout=30).json()
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return sum(len(operation.get("tags") or ["default"]) for item in document["paths"].values()
               for method, operation in item.items() if method in methods)


def test_swagger_ui_renders_and_executes_offline(offline: OfflinePage, soft_server: LiveServer) -> None:
    page = offline.page
    page.goto(f"{soft_server.url}/swagger-ui/index.html")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() == rendered_operation_count(soft_server)

    block = page.locator(".opblock").filter(has=page.locator(".opblock-summary-path", has_text="/v1/versionInfo"))
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    answer = block.locator(".live-responses-table .response").first  # the header row aside
    answer.wait_for()
    assert answer.locator(".response-col_status").inner_text().strip() == "200"
    assert '"Vendor": "hsmgate"' in answer.locator(".response-col_description").inner_text()

    assert offline.left_host == [], "requests that left the host"
    assert offline.errors == []


def test_redoc_renders_offline(offline: OfflinePage, soft_server: LiveServer) -> None:
    page = offline.page
    page.goto(f"{soft_server.url}/redoc")
    for summary in ("Sign a payload with a key of the partition", "Create a key in the partition"):
        page.get_by_role("heading", name=summary).wait_for()
    assert offline.left_host == [], "requests that left the host"
    assert offline.errors == []

