"""The one error model: TSB business errors with their code, reason and HTTP status.

Every error hsmgate returns is a :class:`TsbError`; the API layer renders it as
``{"errorCode", "reason", "message"}`` with :attr:`TsbError.status`. Subclasses exist for the
meanings the code raises often; any other TSB code is ``TsbError(code, message)``.

    TsbError
     ├── ValidationFailed        600  bad input; the message names the field
     ├── KeySizeInvalid          603
     ├── KeyAttributesInvalid    606
     ├── AlgorithmNotSupportedByKey 607
     ├── KeyAlreadyExists        608
     ├── InvalidKeyName          610
     ├── UnsupportedOperation    611
     ├── InvalidPayload          612
     ├── InvalidKeyType          613
     ├── OperationForbiddenForKey 614
     ├── InvalidJson             621
     ├── KeyNotFound             650
     └── HsmFailure              701
"""

from __future__ import annotations

REASONS: dict[int, str] = {
    1: "res.error.technical", 2: "res.error.connectivity",
    100: "res.error.impl", 101: "res.error.not.implemented", 102: "res.error.operation.unreachable",
    103: "res.error.general", 200: "res.error.init", 300: "res.error.config.not.existent",
    301: "res.error.config.not.valid", 302: "res.error.invalid.config.input",
    400: "res.error.security.not.allowed", 401: "res.error.missing.approval",
    402: "res.error.invalid.certificate", 403: "res.error.input.invalid.signature",
    404: "res.error.input.timestamp.off", 405: "res.error.timestamp.signer.not.allowed",
    406: "res.error.missing.access.token", 407: "res.error.parsing.key", 408: "res.error.reading.pem",
    409: "res.error.parsing.certificate", 410: "res.error.decrypt.failed",
    411: "res.error.invalid.certificate.request", 412: "res.error.invalid.onetimepassword",
    413: "res.error.approver.not.existent", 414: "res.error.approver.not.onboarded",
    415: "res.error.request.signer.not.allowed", 416: "res.error.missing.api.key",
    450: "res.error.client.subscription", 451: "res.error.client.endpoint.not.licensed",
    500: "res.error.data.invalid.constellation", 501: "res.error.invalid.value.for.enum",
    600: "res.error.input.validation.failed", 601: "res.error.unsupported.approver.key.type",
    602: "res.error.unsupported.combination.of.approval.types", 603: "res.error.input.keysize",
    604: "res.error.input.no.name.for.certificate.approver", 605: "res.error.unsupported.cryptocurrency",
    606: "res.error.key.attributes.invalid", 607: "res.error.algorithm.not.supported.by.key",
    608: "res.error.key.already.existing", 609: "res.error.invalid.uuid", 610: "res.error.invalid.key.name",
    611: "res.error.unsupported.operation", 612: "res.error.invalid.payload", 613: "res.error.invalid.key.type",
    614: "res.error.operation.forbidden.for.key", 615: "res.error.data.object.already.existing",
    616: "res.error.data.object.invalid.value", 617: "res.error.invalid.access.token",
    618: "res.error.insufficient.login.information", 619: "res.error.invalid.number.range",
    620: "res.error.key.password.mismatch", 621: "res.error.invalid.json", 623: "res.error.invalid.file.header",
    624: "res.error.key.invalid.tagLength", 625: "res.error.key.invalid.encoding",
    626: "res.error.certificate.invalid.encoding", 627: "res.error.invalid.key.id",
    628: "res.error.csr.invalid.format", 629: "res.error.unsupported.cipher",
    630: "res.error.invalid.address.on.non.ska.key", 631: "res.error.invalid.api.key",
    632: "res.error.approver.already.existing", 633: "res.error.input.no.value.for.approver.mgmt",
    634: "res.error.derivation.not.supported.by.algorithm", 635: "res.error.encoding.exception",
    650: "res.error.key.not.existent", 651: "res.error.request.not.existent", 652: "res.error.task.not.existent",
    653: "res.error.data.object.not.existent", 654: "res.error.approver.not.existent",
    700: "res.error.in.subystem", 701: "res.error.in.hsm", 702: "res.error.creation.integrity.key",
    703: "res.error.io", 704: "res.error.file.not.found",
}


def status_for(code: int) -> int:
    """HTTP status of a TSB code: the prefix rule of the reference (§1.1) plus 631 → 401."""
    if code in (631, 406, 416, 617):
        return 401
    if 450 <= code < 460:
        return 403
    if 650 <= code < 660:
        return 404
    if 400 <= code < 500 or 600 <= code < 700:
        return 400
    if 100 <= code < 200:
        return 501
    return 500


class TsbError(Exception):
    """A TSB business error. ``status`` defaults to the reference's mapping for ``code``."""

    code: int = 103

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.status = status if status is not None else status_for(self.code)

    @property
    def reason(self) -> str:
        return REASONS.get(self.code, "res.error.general")


class ValidationFailed(TsbError):
    code = 600


class KeySizeInvalid(TsbError):
    code = 603


class KeyAttributesInvalid(TsbError):
    code = 606


class AlgorithmNotSupportedByKey(TsbError):
    code = 607


class KeyAlreadyExists(TsbError):
    code = 608


class InvalidKeyName(TsbError):
    code = 610


class UnsupportedOperation(TsbError):
    code = 611


class InvalidPayload(TsbError):
    code = 612


class InvalidKeyType(TsbError):
    code = 613


class OperationForbiddenForKey(TsbError):
    code = 614


class InvalidAddressOnNonSkaKey(TsbError):
    code = 630


class InvalidJson(TsbError):
    code = 621


class KeyNotFound(TsbError):
    code = 650


class HsmFailure(TsbError):
    code = 701
