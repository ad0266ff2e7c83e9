"""The one exception of the client: a TSB error body, or an answer that is not one."""

from __future__ import annotations

import httpx


class TsbApiError(Exception):
    """hsmgate (or a TSB) refused or failed a request. ``status`` is the HTTP status; ``error_code``,
    ``reason`` and ``message`` are the body's ``errorCode``, ``reason`` and ``message`` (for an
    answer without a TSB error body — a proxy's 502, say — ``error_code`` is None and ``message``
    the start of the body).

        try:
            client.sign("my-key", b"data", "SHA256_WITH_ECDSA")
        except TsbApiError as exc:
            if exc.error_code == 650: ...   # res.error.key.not.existent
    """

    def __init__(self, status: int, error_code: int | None, reason: str, message: str) -> None:
        super().__init__(f"{status} {error_code if error_code is not None else '-'} {reason}: {message}")
        self.status = status
        self.error_code = error_code
        self.reason = reason
        self.message = message

    @classmethod
    def from_body(cls, status: int, body: object) -> TsbApiError:
        """The error of a batch item or of an answer's JSON body."""
        if isinstance(body, dict) and isinstance(body.get("errorCode"), int):
            return cls(status, body["errorCode"], str(body.get("reason", "")), str(body.get("message", "")))
        return cls(status, None, "", str(body)[:200])

    @classmethod
    def from_response(cls, response: httpx.Response) -> TsbApiError:
        try:
            body: object = response.json()
        except ValueError:
            body = response.text
        return cls.from_body(response.status_code, body)
