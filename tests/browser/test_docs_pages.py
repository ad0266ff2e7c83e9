"""Swagger UI and ReDoc in a real browser (Debian's headless Chromium driven by Playwright), with
every request to another host aborted: the pages must work from hsmgate's own files alone."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from tests.browser.offline import OfflinePage
from tests.helpers import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]  # Playwright starts its driver and Chromium


@pytest.fixture()
def offline(browser: Browser, soft_server: LiveServer) -> Iterator[OfflinePage]:
    page = OfflinePage(browser, soft_server)
    yield page
    page.close()


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

