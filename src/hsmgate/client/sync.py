"""The synchronous client (httpx); :mod:`hsmgate.client.aio` has the same calls with ``await``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self, TypeVar

import httpx

from hsmgate.api.wire.approvers import ApproverOnboardResponseDto
from hsmgate.api.wire.keys import CreateKeyAttributes, SignedKeyAttributesDto
from hsmgate.api.wire.ska import RequestStatusDto, TaskDto
from hsmgate.client import calls
from hsmgate.client.calls import ApproverProof, Call, Encrypted, SignItem, VerifyItem
from hsmgate.client.errors import TsbApiError

T = TypeVar("T")


def credentials(api_key: str | None, bearer_token: str | None) -> dict[str, str]:
    """The headers of a caller's credentials: an API key (``X-API-KEY``) or a JWT bearer token."""
    headers: dict[str, str] = {}
    if api_key:
        headers["X-API-KEY"] = api_key
    if bearer_token:
        headers["Authorization"] = f"Bearer {bearer_token}"
    return headers


class HsmgateClient:
    """A client of one hsmgate (or TSB) URL, as one caller (API key or bearer token; none in dev
    mode). Every refusal or failure is a :class:`TsbApiError`; a server that cannot be reached is
    httpx's ``TransportError``. Use it as a context manager, or :meth:`close` it.

        with HsmgateClient("http://127.0.0.1:8080", api_key=KEY) as client:
            signature = client.sign("my-key", b"payload", "SHA256_WITH_ECDSA")
    """

    def __init__(self, url: str, *, api_key: str | None = None, bearer_token: str | None = None,
                 timeout: float = 60.0, verify: bool | str = True, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=url, headers=credentials(api_key, bearer_token), timeout=timeout,
                                  verify=verify, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        return call.answer(self._http.request(call.method, call.path, json=call.request_json()))

    def create_key(self, label: str, algorithm: str, *, key_size: int | None = None, curve_oid: str | None = None,
                   attributes: CreateKeyAttributes | None = None, password: str | None = None,
                   policy: dict[str, Any] | None = None) -> SignedKeyAttributesDto:
        """Create a key (``POST /v1/key``): ``algorithm`` ``RSA`` (``key_size``), ``EC`` / ``ED``
        (``curve_oid``), ``AES``…; without ``attributes``, a signing key that can be deleted
        (:data:`SIGNING_KEY`). Returns the key with its attestation."""
        return self._send(calls.create_key(
            label, algorithm, key_size=key_size, curve_oid=curve_oid, attributes=attributes, password=password,
            policy=policy))

    def list_keys(self) -> list[str]:
        """The labels of the partition's keys."""
        return self._send(calls.list_keys())

    def describe_key(self, label: str, *, password: str | None = None) -> SignedKeyAttributesDto:
        """A key's attributes and public key, signed by the attestation key."""
        return self._send(calls.describe_key(label, password=password))

    def delete_key(self, label: str, *, password: str | None = None) -> None:
        """Delete a destroyable key."""
        return self._send(calls.delete_key(label, password=password))

    def sign(self, label: str, payload: bytes, algorithm: str, *, signature_type: str | None = None,
             password: str | None = None, context: bytes | None = None) -> bytes:
        """The signature of ``payload`` (DER for ECDSA/DSA unless ``signature_type`` is ``RAW`` or ``ETH``)."""
        return self._send(calls.sign(SignItem(label, payload, algorithm, signature_type, password, context)))

    def sign_batch(self, items: Sequence[SignItem]) -> list[bytes | TsbApiError]:
        """One signature per item in one request (at most the server's HSMGATE_MAX_BATCH items): each
        result is the signature or that item's :class:`TsbApiError`, in order."""
        return self._send(calls.sign_batch(items))

    def verify(self, label: str, payload: bytes, signature: bytes, algorithm: str, *, password: str | None = None,
               context: bytes | None = None) -> bool:
        """True when ``signature`` is valid for ``payload`` (an invalid signature is False, not an error)."""
        return self._send(calls.verify(VerifyItem(label, payload, signature, algorithm, password, context)))

    def verify_batch(self, items: Sequence[VerifyItem]) -> list[bool | TsbApiError]:
        """One verdict (or that item's :class:`TsbApiError`) per item, in order."""
        return self._send(calls.verify_batch(items))

    def encrypt(self, label: str, payload: bytes, algorithm: str, *, aad: bytes | None = None,
                tag_length: int | None = None, password: str | None = None) -> Encrypted:
        """Encrypt with a secret key (``AES_GCM``, ``CHACHA20_AEAD``, …) or an RSA public key; the
        backend chooses the IV."""
        return self._send(calls.encrypt(label, payload, algorithm, aad=aad, tag_length=tag_length, password=password))

    def decrypt(self, label: str, ciphertext: bytes, algorithm: str, *, iv: bytes | None = None,
                aad: bytes | None = None, tag_length: int | None = None, password: str | None = None) -> bytes:
        """The plaintext; a wrong key, IV, AAD or tag is a :class:`TsbApiError` (410), never partial output."""
        return self._send(calls.decrypt(
            label, ciphertext, algorithm, iv=iv, aad=aad, tag_length=tag_length, password=password))

    def get_request(self, request_id: str) -> RequestStatusDto:
        """Status (and, once executed, result) of an SKA request."""
        return self._send(calls.get_request(request_id))

    def list_requests(self, statuses: Sequence[str] | None = None) -> list[RequestStatusDto]:
        """The partition's SKA requests, of the given statuses (``PENDING``, ``APPROVED``, …) or all."""
        return self._send(calls.list_requests(statuses))

    # -- approvers (docs/approvers.md) ------------------------------------------------------------

    def onboard_approver(self, name: str, one_time_code: str, transport_password: str) -> ApproverOnboardResponseDto:
        """Redeem a one-time code: the approver's PKCS#12, AES-GCM under ``transport_password``
        (16 or 32 bytes in UTF-8)."""
        return self._send(calls.onboard_approver(name, one_time_code, transport_password))

    def approval_tasks(self, proof: ApproverProof, *, task_id: str | None = None, request_id: str | None = None,
                       detail_level: str = "level3") -> list[TaskDto]:
        """The approver's open tasks of every kind (``/v1/filteredAllApprovalTask``)."""
        return self._send(calls.approval_tasks(proof, task_id=task_id, request_id=request_id,
                                               detail_level=detail_level))

    def approve_task(self, task_id: str, token: bytes, signature: bytes, *, certificate: bytes | None = None,
                     public_key: bytes | None = None, digest_algorithm: str = "SHA-256") -> None:
        """Approve a task: ``signature`` over the decoded ``approvalToBeSigned`` (``token``)."""
        return self._send(calls.approve_task(task_id, token, signature, certificate=certificate,
                                             public_key=public_key, digest_algorithm=digest_algorithm))

    def reject_task(self, task_id: str, proof: ApproverProof) -> None:
        """Reject (delete) a task."""
        return self._send(calls.reject_task(task_id, proof))
