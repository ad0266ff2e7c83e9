"""The request body limits (HSMGATE_MAX_BODY_BYTES, and HSMGATE_MAX_BATCH_BODY_BYTES for the batch
routes): a pure ASGI middleware in the app's one stack, so they hold for every route, before
authentication and before any parsing.

* A ``Content-Length`` above the limit is answered at once: not a byte of the body is read.
* A body without one (``Transfer-Encoding: chunked``) is counted while the application reads it;
  the moment it passes the limit the middleware answers, and the application is told the client
  has gone (``http.disconnect``): what it makes of a body it never got in full is dropped unsent.

The answer is 413 with the TSB error body, code 600 (``res.error.input.validation.failed``: the
request is invalid input; the TSB has no code of its own for it, ``docs/tsb-deviations.md``), and
``Connection: close``, so the server stops reading the rest of the body.

Default limits: 1 MiB for every request but a batch (one operation is at most 64 KiB of data at the
TSB, reference §5.1; the rest is room for a key import, an SKA policy with its approvers'
certificates, a CSR), and for the batch routes the largest legitimate batch, HSMGATE_MAX_BATCH sign
or verify items each at the TSB's per-request limit:

=====================================  ===========  =============================================
one item's data, base64                     87,384  4 × ⌈65,536 / 3⌉ (payload, metaData, context,
                                                    signature, signedApprovals together ≤ 64 KiB)
one item's framing                           8,192  field names, quotes, separators, enum values,
                                                    a key name (≤ 256 characters), a password of
                                                    ≤ 1,024 characters as a char[] (``"c",`` = 4
                                                    bytes each: 4,096), base64 padding, white space
one item                                    95,576
the request around the items             1,048,576  ``{"signRequests": [...]}``, and every request
                                                    that is not a batch (one operation, a key
                                                    import, an SKA policy with its approvers'
                                                    certificates, a CSR of ≤ 64 KiB)
=====================================  ===========  =============================================

``1,048,576 + HSMGATE_MAX_BATCH × 95,576``: 96,624,576 bytes (92.1 MiB) for the default batch of
1000. Deployments that send no large batches should set a lower limit.

The file routes (``/v1/fileEncrypt``, ``/v1/synchronousFileDecrypt``) take HSMGATE_MAX_FILE_BYTES
(default 2 GiB) plus the same 1 MiB allowance for their JSON part and the multipart framing.
"""

from __future__ import annotations

import math

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hsmgate.api.errors import error_response
from hsmgate.settings import Settings

#: The TSB's limit on one request to the HSM (payload and the other data of one operation), bytes.
TSB_MAX_REQUEST_BYTES = 64 * 1024
#: That data in base64, as it travels in JSON.
ITEM_DATA_BYTES = 4 * math.ceil(TSB_MAX_REQUEST_BYTES / 3)
#: The JSON of one batch item besides its base64 data (module text).
ITEM_FRAMING_BYTES = 8 * 1024
ITEM_BYTES = ITEM_DATA_BYTES + ITEM_FRAMING_BYTES
#: The request around the items, and any request that is not a batch.
REQUEST_ALLOWANCE_BYTES = 1024 * 1024
#: Code of the answer: the TSB's validation failure (docs/tsb-deviations.md).
TOO_LARGE_CODE = 600

_CONTENT_LENGTH = b"content-length"
#: Stands for a Content-Length of more than 20 digits (above any limit; no int parsing of it).
_HUGE = 10**21


def default_max_body_bytes(max_batch: int) -> int:
    """The largest legitimate batch of at most ``max_batch`` items (module text)."""
    return REQUEST_ALLOWANCE_BYTES + max_batch * ITEM_BYTES


def max_batch_body_bytes(settings: Settings) -> int:
    """HSMGATE_MAX_BATCH_BODY_BYTES, or the default sized by HSMGATE_MAX_BATCH."""
    if settings.max_batch_body_bytes is not None:
        return settings.max_batch_body_bytes
    return default_max_body_bytes(settings.max_batch)


def max_file_body_bytes(settings: Settings) -> int:
    """HSMGATE_MAX_FILE_BYTES and the allowance for the rest of a multipart request."""
    return settings.max_file_bytes + REQUEST_ALLOWANCE_BYTES


def _declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, None when it has none (the server refuses malformed ones)."""
    for name, value in scope["headers"]:
        if name == _CONTENT_LENGTH:
            digits = value.strip()
            if not digits.isdigit():
                return None
            return int(digits) if len(digits) <= 20 else _HUGE
    return None


class BodyLimitMiddleware:
    """Refuses request bodies above the limit of their path with 413 (module text):
    ``max_batch_body_bytes`` on ``batch_paths``, ``max_body_bytes`` everywhere else."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_batch_body_bytes: int,
                 batch_paths: frozenset[str], max_file_body_bytes: int = 0,
                 file_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_batch_body_bytes = max_batch_body_bytes
        self.batch_paths = batch_paths
        self.max_file_body_bytes = max_file_body_bytes
        self.file_paths = file_paths

    def _limit(self, path: str) -> tuple[int, str]:
        """The limit of ``path`` and the setting that sets it."""
        if path in self.batch_paths:
            return self.max_batch_body_bytes, "HSMGATE_MAX_BATCH_BODY_BYTES"
        if path in self.file_paths:
            return self.max_file_body_bytes, "HSMGATE_MAX_FILE_BYTES"
        return self.max_body_bytes, "HSMGATE_MAX_BODY_BYTES"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        setting = self._limit(scope["path"])[1]
        response = error_response(TOO_LARGE_CODE, f"the request body is larger than the limit of "
                                                  f"{limit} bytes ({setting})", 413)
        response.headers["connection"] = "close"
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])[0]
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        started = cut = answered = False

        async def counted_receive() -> Message:
            nonlocal received, cut, answered
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut = True
                    if not started:  # (else too late for an answer: the application just loses the body)
                        answered = True
                        await self._refuse(scope, receive, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:  # the application's answer to a body it never got in full
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not answered:
                raise
            # The application failed on the disconnect it was told of: already answered with 413.
