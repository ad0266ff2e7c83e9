"""A typed Python client of hsmgate's REST API (and of a Securosys TSB: the same wire format).

    from hsmgate.client import HsmgateClient, TsbApiError

    with HsmgateClient("http://127.0.0.1:8080", api_key="...") as client:
        key = client.create_key("invoices", "EC", curve_oid="1.2.840.10045.3.1.7")
        signature = client.sign("invoices", b"payload", "SHA256_WITH_ECDSA")

:class:`HsmgateClient` (httpx, blocking) and :class:`AsyncHsmgateClient` (``await``) have the same
calls: keys (create, list, describe, delete), sign and verify (one, or a batch), encrypt and
decrypt, SKA requests (get, list), and an approver's calls (onboard, tasks, approve, reject). Request bodies and answers are the server's own pydantic wire
models (``hsmgate.api.wire``); every refusal is a :class:`TsbApiError` with the TSB error body's
``errorCode``, ``reason`` and ``message`` and the HTTP ``status``. ``docs/client.md`` has examples.
"""

from hsmgate.client.aio import AsyncHsmgateClient
from hsmgate.client.calls import SIGNING_KEY, ApproverProof, Encrypted, SignItem, VerifyItem
from hsmgate.client.errors import TsbApiError
from hsmgate.client.sync import HsmgateClient

__all__ = ["SIGNING_KEY", "ApproverProof", "AsyncHsmgateClient", "Encrypted", "HsmgateClient", "SignItem", "TsbApiError",
           "VerifyItem"]
