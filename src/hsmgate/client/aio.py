"""The asynchronous client: :class:`AsyncHsmgateClient`, the calls of
:class:`hsmgate.client.HsmgateClient` with ``await``."""

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
from hsmgate.client.sync import credentials


class AsyncHsmgateClient:
    """As :class:`hsmgate.client.HsmgateClient`, on ``httpx.AsyncClient``:

        async with AsyncHsmgateClient("http://127.0.0.1:8080", api_key=KEY) as client:
            signature = await client.sign("my-key", b"payload", "SHA256_WITH_ECDSA")
    """

    def __init__(self, url: str, *, api_key: str | None = None, bearer_token: str | None = None,
                 timeout: float = 60.0, verify: bool | str = True,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=url, headers=credentials(api_key, bearer_token), timeout=timeout,
                                       verify=verify, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call[T]) -> T:
        return call.answer(await self._http.request(call.method, call.path, json=call.request_json()))

    async def create_key(self, label: str, algorithm: str, *, key_size: int | None = None, curve_oid: str | None = None,
                   attributes: CreateKeyAttributes | None = None, password: str | None = None,
                   policy: dict[str, Any] | None = None) -> SignedKeyAttributesDto:
        """As :meth:`HsmgateClient.create_key`."""
        return await self._send(calls.create_key(
            label, algorithm, key_size=key_size, curve_oid=curve_oid, attributes=attributes, password=password,
            policy=policy))

    async def list_keys(self) -> list[str]:
        """As :meth:`HsmgateClient.list_keys`."""
        return await self._send(calls.list_keys())

    async def describe_key(self, label: str, *, password: str | None = None) -> SignedKeyAttributesDto:
        """As :meth:`HsmgateClient.describe_key`."""
        return await self._send(calls.describe_key(label, password=password))

    async def delete_key(self, label: str, *, password: str | None = None) -> None:
        """As :meth:`HsmgateClient.delete_key`."""
        return await self._send(calls.delete_key(label, password=password))

    async def sign(self, label: str, payload: bytes, algorithm: str, *, signature_type: str | None = None,
             password: str | None = None, context: bytes | None = None) -> bytes:
        """As :meth:`HsmgateClient.sign`."""
        return await self._send(calls.sign(SignItem(label, payload, algorithm, signature_type, password, context)))

    async def sign_batch(self, items: Sequence[SignItem]) -> list[bytes | TsbApiError]:
        """As :meth:`HsmgateClient.sign_batch`."""
        return await self._send(calls.sign_batch(items))

    async def verify(self, label: str, payload: bytes, signature: bytes, algorithm: str, *, password: str | None = None,
               context: bytes | None = None) -> bool:
        """As :meth:`HsmgateClient.verify`."""
        return await self._send(calls.verify(VerifyItem(label, payload, signature, algorithm, password, context)))

    async def verify_batch(self, items: Sequence[VerifyItem]) -> list[bool | TsbApiError]:
        """As :meth:`HsmgateClient.verify_batch`."""
        return await self._send(calls.verify_batch(items))

    async def encrypt(self, label: str, payload: bytes, algorithm: str, *, aad: bytes | None = None,
                tag_length: int | None = None, password: str | None = None) -> Encrypted:
        """As :meth:`HsmgateClient.encrypt`."""
        return await self._send(calls.encrypt(label, payload, algorithm, aad=aad, tag_length=tag_length, password=password))

    async def decrypt(self, label: str, ciphertext: bytes, algorithm: str, *, iv: bytes | None = None,
                aad: bytes | None = None, tag_length: int | None = None, password: str | None = None) -> bytes:
        """As :meth:`HsmgateClient.decrypt`."""
        return await self._send(calls.decrypt(
            label, ciphertext, algorithm, iv=iv, aad=aad, tag_length=tag_length, password=password))

    async def get_request(self, request_id: str) -> RequestStatusDto:
        """As :meth:`HsmgateClient.get_request`."""
        return await self._send(calls.get_request(request_id))

    async def list_requests(self, statuses: Sequence[str] | None = None) -> list[RequestStatusDto]:
        """As :meth:`HsmgateClient.list_requests`."""
        return await self._send(calls.list_requests(statuses))

    # -- approvers (docs/approvers.md) ------------------------------------------------------------

    async def onboard_approver(self, name: str, one_time_code: str, transport_password: str) -> ApproverOnboardResponseDto:
        """Redeem a one-time code: the approver's PKCS#12, AES-GCM under ``transport_password``
        (16 or 32 bytes in UTF-8)."""
        return await self._send(calls.onboard_approver(name, one_time_code, transport_password))

    async def approval_tasks(self, proof: ApproverProof, *, task_id: str | None = None, request_id: str | None = None,
                       detail_level: str = "level3") -> list[TaskDto]:
        """The approver's open tasks of every kind (``/v1/filteredAllApprovalTask``)."""
        return await self._send(calls.approval_tasks(proof, task_id=task_id, request_id=request_id,
                                               detail_level=detail_level))

    async def approve_task(self, task_id: str, token: bytes, signature: bytes, *, certificate: bytes | None = None,
                     public_key: bytes | None = None, digest_algorithm: str = "SHA-256") -> None:
        """Approve a task: ``signature`` over the decoded ``approvalToBeSigned`` (``token``)."""
        return await self._send(calls.approve_task(task_id, token, signature, certificate=certificate,
                                             public_key=public_key, digest_algorithm=digest_algorithm))

    async def reject_task(self, task_id: str, proof: ApproverProof) -> None:
        """Reject (delete) a task."""
        return await self._send(calls.reject_task(task_id, proof))
