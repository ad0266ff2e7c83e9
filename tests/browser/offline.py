"""Browser pages that must work offline: every request to a host other than the server's is
aborted and noted."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, Route

from tests.helpers import LiveServer

TIMEOUT_MS = 30_000


class OfflinePage:
    """A page in a browser context of its own (its own storage) on which every request to a host
    other than the server's is aborted and noted, as are uncaught script errors."""

    def __init__(self, browser: Browser, server: LiveServer) -> None:
        self.origin = urlsplit(server.url).netloc
        self.context: BrowserContext = browser.new_context()
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.left_host: list[str] = []
        self.errors: list[str] = []
        self.console_errors: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.console_errors.append(message.text)
                     if message.type == "error" else None)

    def _route(self, route: Route) -> None:
        if urlsplit(route.request.url).netloc == self.origin:
            route.continue_()
        else:
            self.left_host.append(route.request.url)
            route.abort()

    def close(self) -> None:
        self.context.close()
