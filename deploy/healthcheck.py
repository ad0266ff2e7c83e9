"""The container's HEALTHCHECK: exit 0 when hsmgate in this container answers GET /health with 200.

Run by the container engine inside the container, with only the standard library: plain HTTP on
HSMGATE_PORT, or HTTPS when HSMGATE_TLS_CERT is set (loopback, so the certificate's name is not
checked: the question is only whether this process serves).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    """Probe http(s)://127.0.0.1:$HSMGATE_PORT/health once; 0 when it answers 200, 1 otherwise."""
    port = os.environ.get("HSMGATE_PORT", "8080")
    context: ssl.SSLContext | None = None
    scheme = "http"
    if os.environ.get("HSMGATE_TLS_CERT"):
        scheme = "https"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/health", timeout=2, context=context) as answer:
            return 0 if answer.status == 200 else 1
    except (OSError, urllib.error.URLError) as exc:
        print(f"hsmgate health check: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
