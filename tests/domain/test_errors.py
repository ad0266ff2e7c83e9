"""The TSB error model: codes, reasons and HTTP statuses."""

from hsmgate.domain import errors


def test_status_mapping_follows_the_reference() -> None:
    assert errors.status_for(650) == 404
    assert errors.status_for(651) == 404
    assert errors.status_for(631) == 401
    assert errors.status_for(600) == 400
    assert errors.status_for(410) == 400
    assert errors.status_for(451) == 403
    assert errors.status_for(701) == 500
    assert errors.status_for(101) == 501


def test_subclasses_carry_their_code_and_reason() -> None:
    exc = errors.KeyNotFound("Key with name NOPE not found")
    assert (exc.code, exc.reason, exc.status) == (650, "res.error.key.not.existent", 404)
    assert errors.KeyAlreadyExists("x").reason == "res.error.key.already.existing"
    assert errors.TsbError("boom", code=701, status=503).status == 503
