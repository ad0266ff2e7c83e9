"""HTTP side of the metrics (``hsmgate/metrics.py`` says what is measured):

* :class:`MetricsMiddleware`, a pure ASGI middleware in the app's one stack, outermost of
  hsmgate's own: every request — the key operations included — is counted by method, *route
  template* (``/v1/key/{keyName}``, never the concrete path, so the number of series stays bounded)
  and status, and its latency observed from its arrival to the end of its answer;
* ``GET /metrics``: the Prometheus text format. Protected like the service role (``auth/roles.py``
  lists it as an hsmgate extension of ``Role.SERVICE``); open in dev mode like everything else.
"""

from __future__ import annotations

import time

from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hsmgate.api.routes import tsb_router
from hsmgate.api.wire.common import ERROR_RESPONSES
from hsmgate.metrics import RequestMetrics

#: Route label of a request no route matched (its path is not used: it is caller text).
UNMATCHED = "<unmatched>"

router = tsb_router(tags=["Service Information"], responses={k: ERROR_RESPONSES[k] for k in (401, 403)})


class MetricsMiddleware:
    """Counts and times every HTTP request (module text)."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before any answer: the server answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")  # set by the router in this very scope
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - started)


@router.get("/metrics", operation_id="metrics", response_class=Response,
            summary="Prometheus metrics (text format): requests, key operations, audit queue, PKCS#11 sessions, "
                    "SKA requests",
            responses={200: {"content": {"text/plain": {}, "application/openmetrics-text": {}},
                             "description": "Prometheus text format 0.0.4, or OpenMetrics when the Accept header "
                                            "asks for it"}})
def metrics(request: Request) -> Response:
    body, content_type = request.app.state.runtime.metrics.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)
