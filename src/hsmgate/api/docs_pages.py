"""The API documentation pages, served entirely by hsmgate: Swagger UI at ``/swagger-ui/index.html``
and ReDoc at ``/redoc``, both reading the OpenAPI document at ``/v3/api-docs``.

Their scripts, style sheet and favicon are the built files of the npm packages ``swagger-ui-dist``
and ``redoc``, vendored with their licences under ``api/static/`` (``static/README.md`` names the
versions and checksums; ``tools/update_docs_assets.py`` refreshes them) and shipped in the wheel.
FastAPI's defaults load them from a public CDN, which leaves a blank page on a host without
internet access; here no request leaves the host (``tests/browser/test_docs_pages.py`` checks it
in a real browser). Swagger UI's online validator badge is switched off for the same reason, and
both pages carry a Content-Security-Policy that lets the browser load nothing from another origin
(ReDoc's sidebar links a logo on its vendor's CDN; the policy keeps that request from being made).

Like the OpenAPI document, these pages describe the API and hold no data: they are plain
Starlette routes outside the role table (``auth/roles.py``), open to every caller.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

STATIC_DIRECTORY = Path(__file__).resolve().parent / "static"
#: Where the vendored files are served.
STATIC_PATH = "/static"
SWAGGER_UI_PATH = "/swagger-ui/index.html"
REDOC_PATH = "/redoc"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


class DocumentationFiles(StaticFiles):
    """The vendored documentation files; ``static/approver/`` is not among them (the approver app
    is served, with its own policy, at ``/approver/``: api/approver_app.py)."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if Path(path).parts[:1] == ("approver",):
            return "", None
        return super().lookup_path(path)


def same_origin_only(page: HTMLResponse) -> HTMLResponse:
    """``page`` with a Content-Security-Policy allowing only this origin: its inline scripts by
    their hashes, inline styles (both UIs inject them) and ReDoc's worker (a ``blob:`` URL)."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
                      for script in _INLINE_SCRIPT.findall(page.body))
    page.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'self'; "
        "base-uri 'none'; form-action 'self'"
    )
    return page


def install_docs_pages(app: FastAPI, *, openapi_url: str) -> None:
    """Serve the vendored files under :data:`STATIC_PATH` and the two pages (the app is created
    with ``docs_url=None, redoc_url=None``)."""
    app.mount(STATIC_PATH, DocumentationFiles(directory=STATIC_DIRECTORY), name="static")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return same_origin_only(get_swagger_ui_html(
            openapi_url=root + openapi_url, title=f"{app.title} — Swagger UI",
            swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_PATH}/swagger-ui/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # the badge would fetch from validator.swagger.io
        ))

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return same_origin_only(get_redoc_html(
            openapi_url=root + openapi_url, title=f"{app.title} — ReDoc",
            redoc_js_url=f"{root}{STATIC_PATH}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_PATH}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        ))

    app.add_route(SWAGGER_UI_PATH, swagger_ui, include_in_schema=False)
    app.add_route(REDOC_PATH, redoc, include_in_schema=False)
