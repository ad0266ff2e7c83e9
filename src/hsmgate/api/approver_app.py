"""The browser approver app at ``/approver/``: static files shipped in the package
(``api/static/approver/``), served with a strict Content-Security-Policy.

The app speaks the protocol of a TSB approver app (registration by ``POST /v1/approver/onboard``,
task lists authenticated by a signed timestamp, ``POST /v1/approval``, ``DELETE /v1/task``); it
holds no server-side state and its files are open to every caller, like the documentation pages:
the API calls it makes carry the approver's own credentials. Its only library, node-forge (to open
the PKCS#12), is vendored as a built file (``static/approver/vendor/README.md``); no request
leaves the origin (``connect-src 'self'``), no inline script or ``eval`` runs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

APPROVER_DIRECTORY = Path(__file__).resolve().parent / "static" / "approver"
APPROVER_PATH = "/approver"
#: The policy of every file of the app: nothing from another origin, no inline script or style,
#: no eval, no plugin, no framing; ``data:`` images only (none are used today).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class ApproverFiles(StaticFiles):
    """The app's files (``index.html`` for the directory) with :data:`SECURITY_HEADERS`."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def install_approver_app(app: FastAPI) -> None:
    """Serve the app under ``/approver/``; ``/approver`` redirects there (the app serves no other
    trailing-slash redirects: ``redirect_slashes=False``)."""

    async def to_directory(request: Request) -> RedirectResponse:
        return RedirectResponse(request.scope.get("root_path", "").rstrip("/") + APPROVER_PATH + "/")

    app.add_route(APPROVER_PATH, to_directory, include_in_schema=False)
    app.mount(APPROVER_PATH, ApproverFiles(directory=APPROVER_DIRECTORY, html=True), name="approver")
