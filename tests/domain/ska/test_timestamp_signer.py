"""A whitelisted timestamp signer (``HSMGATE_TIMESTAMP_SIGNING_CERTIFICATES``, the TSB's
``general.allowedTimestampSigningCertificates``) fetches the tasks of every approver, or of one,
but cannot approve; an unlisted signer certificate is refused with 405 (reference §6.3, A.3)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hsmgate.domain.clock import ManualClock
from tests.helpers import assert_tsb_error, b64, unique
from tests.domain.ska.helpers import Approver, clock_server, create_key, policy, rule, sign_request, token


def _certificate(key: ec.EllipticCurvePrivateKey, name: str) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.DER)


def test_timestamp_signer(tmp_path: Path) -> None:
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = _certificate(signer_key, "notification-service")
    pem = tmp_path / "signer.pem"
    pem.write_bytes(x509.load_der_x509_certificate(signer).public_bytes(serialization.Encoding.PEM))
    other_key = ec.generate_private_key(ec.SECP256R1())
    one, two = Approver("ec"), Approver("ed25519")
    with clock_server(tmp_path / "data", ManualClock(), timestamp_signing_certificates=str(pem)) as server, \
            server.client() as http:
        label = unique("ska-signer")
        create_key(http, label, policy(rule(token((1, [one]), timeout=600), token((1, [two]), name="T2", timeout=600))))
        request_id = sign_request(http, label)

        def fetch(key: ec.EllipticCurvePrivateKey, certificate: bytes, **fields: object) -> object:
            stamp = server.clock.now().strftime("%Y-%m-%dT%H:%M:%S+00:00")
            return http.post("/v1/filteredAllApprovalTask", json={
                "timestamp": stamp, "timestampSignature": b64(key.sign(stamp.encode(), ec.ECDSA(hashes.SHA256()))),
                "timestampDigestAlgorithm": "SHA-256", "timestampSigningCertificate": b64(certificate),
                "requestId": request_id, **fields})

        everyone = fetch(signer_key, signer)
        assert everyone.status_code == 200, everyone.text  # type: ignore[attr-defined]
        assert sorted(t["approverPublicKey"] for t in everyone.json()["tasks"]) == sorted([one.b64, two.b64])  # type: ignore[attr-defined]
        only_two = fetch(signer_key, signer, approverPublicKey=two.b64).json()["tasks"]  # type: ignore[attr-defined]
        assert [t["approverPublicKey"] for t in only_two] == [two.b64]
        assert_tsb_error(
            fetch(other_key, _certificate(other_key, "intruder")), 405, 400)  # type: ignore[arg-type]
        assert_tsb_error(
            fetch(other_key, signer), 403, 400)  # type: ignore[arg-type]  # not the certificate's key
