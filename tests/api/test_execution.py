"""Where key operations run (api/execution.py): inline on the event loop for the soft token and for a
PKCS#11 token declared fast and local (HSMGATE_PKCS11_INLINE), in the threadpool otherwise; and a
PKCS#11 server running inline signs and audits as the default one does."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsmgate.api.execution import inline_operations
from hsmgate.store.audit import AuditRepository
from tests.helpers import LiveServer, soft_settings, unique
from tests.softhsm import SoftHsmToken


@pytest.mark.parametrize(("backend", "inline", "dialect", "expected"), [
    ("soft", False, "sqlite", True),
    ("soft", False, "postgresql", False),
    ("pkcs11", False, "sqlite", False),  # the default: a network HSM must not stall the event loop
    ("pkcs11", True, "sqlite", True),
    ("pkcs11", True, "postgresql", False),  # a PostgreSQL round trip is network
])
def test_which_operations_run_inline(tmp_path: Path, backend: str, inline: bool, dialect: str,
                                     expected: bool) -> None:
    module = {"pkcs11_module": "/usr/lib/softhsm/libsofthsm2.so", "pkcs11_token_label": "t",
              "pkcs11_pin": "1234"} if backend == "pkcs11" else {}
    settings = soft_settings(tmp_path, backend=backend, pkcs11_inline=inline, **module)
    assert inline_operations(settings, dialect) is expected


@pytest.mark.pkcs11
def test_a_pkcs11_server_signs_inline(tmp_path: Path, softhsm_factory: Callable[[str], SoftHsmToken]) -> None:
    hsm = softhsm_factory("inline")
    settings = soft_settings(tmp_path / "data", backend="pkcs11", pkcs11_module=hsm.module_path,
                             pkcs11_token_label=hsm.token_label, pkcs11_pin=hsm.pin, pkcs11_inline=True)
    label = unique("inline")
    with LiveServer(settings) as server, server.client() as http:
        assert server.app.state.inline_operations is True
        created = http.post("/v1/key", json={"label": label, "algorithm": "EC", "curveOid": "1.2.840.10045.3.1.7",
                                             "attributes": {"sign": True, "decrypt": False, "unwrap": False,
                                                            "destroyable": True}})
        assert created.status_code == 201, created.text
        public = serialization.load_der_public_key(base64.b64decode(created.json()["json"]["publicKey"]))
        assert isinstance(public, ec.EllipticCurvePublicKey)
        for payload in (b"one", b"two", b"three"):
            signed = http.post("/v1/synchronousSign", json={"signRequest": {
                "payload": base64.b64encode(payload).decode(), "signKeyName": label,
                "signatureAlgorithm": "SHA256_WITH_ECDSA"}})
            assert signed.status_code == 200, signed.text
            public.verify(base64.b64decode(signed.json()["signature"]), payload, ec.ECDSA(hashes.SHA256()))
        records = [r for r in AuditRepository(server.app.state.db).records("default")
                   if r["operation"] == "synchronousSign"]
        assert [(r["key_label"], r["outcome"]) for r in records] == [(label, "ok")] * 3
