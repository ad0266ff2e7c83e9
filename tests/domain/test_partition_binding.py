"""A partition's state is bound to its token on the first start; another backend or token is refused
(``domain/partition_binding.py``), and ``partition remove`` forgets the binding."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hsmgate.app import create_app
from hsmgate.domain.partition_binding import BindingMismatch, PartitionBindings
from hsmgate.hsm.base import TokenIdentity
from hsmgate.hsm.soft import master_key_fingerprint
from hsmgate.settings import ConfigError
from hsmgate.store.database import Database
from hsmgate.store.partition_bindings import BindingRepository
from hsmgate.store.partitions import PartitionRepository
from tests.helpers import soft_settings
from tests.softhsm import SoftHsmToken

KEY_A, KEY_B = bytes(range(32)), bytes(range(1, 33))
SOFT_A = TokenIdentity("soft", key_fingerprint=master_key_fingerprint(KEY_A))
SOFT_B = TokenIdentity("soft", key_fingerprint=master_key_fingerprint(KEY_B))
TOKEN_1 = TokenIdentity("pkcs11", token_label="one", token_serial="0001")
NOW = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'state.db'}")
    database.migrate()
    yield database
    database.dispose()


def test_the_fingerprint_names_the_key_without_revealing_it() -> None:
    fingerprint = master_key_fingerprint(KEY_A)
    assert len(fingerprint) == 64 and fingerprint != KEY_A.hex()
    assert KEY_A.hex() not in fingerprint and fingerprint != master_key_fingerprint(KEY_B)


def test_first_start_binds_and_later_starts_compare(db: Database) -> None:
    bindings = PartitionBindings(BindingRepository(db))
    assert bindings.check("p", SOFT_A) is False
    bindings.bind("p", SOFT_A, when=NOW)
    assert bindings.check("p", SOFT_A) is True
    with pytest.raises(BindingMismatch, match=r"belongs to the soft token under the master key with fingerprint "
                                              rf"{SOFT_A.key_fingerprint[:16]}, not to the soft token"):  # type: ignore[index]
        bindings.check("p", SOFT_B)
    with pytest.raises(BindingMismatch, match=r"not to PKCS#11 token 'one' \(serial 0001\): set HSMGATE_MASTER_KEY"):
        bindings.check("p", TOKEN_1)
    assert bindings.check("other", TOKEN_1) is False  # bindings are per partition


@pytest.mark.parametrize("other", [TokenIdentity("pkcs11", token_label="one", token_serial="0002"),
                                   TokenIdentity("pkcs11", token_label="two", token_serial="0001"), SOFT_A])
def test_a_pkcs11_partition_refuses_another_token(db: Database, other: TokenIdentity) -> None:
    bindings = PartitionBindings(BindingRepository(db))
    bindings.bind("p", TOKEN_1, when=NOW)
    with pytest.raises(BindingMismatch, match="belongs to PKCS#11 token 'one' \\(serial 0001\\)"):
        bindings.check("p", other)


def test_a_racing_second_bind_is_checked_not_overwritten(db: Database) -> None:
    bindings = PartitionBindings(BindingRepository(db))
    bindings.bind("p", SOFT_A, when=NOW)
    bindings.bind("p", SOFT_A, when=NOW)  # the same token: fine
    with pytest.raises(BindingMismatch):
        bindings.bind("p", SOFT_B, when=NOW)
    assert BindingRepository(db).get("p").key_fingerprint == SOFT_A.key_fingerprint  # type: ignore[union-attr]


def test_removing_a_partition_forgets_its_binding(db: Database) -> None:
    bindings = PartitionBindings(BindingRepository(db))
    bindings.bind("p", TOKEN_1, when=NOW)
    PartitionRepository(db).remove("p")
    assert bindings.check("p", SOFT_A) is False


def test_an_app_binds_its_partition_and_an_existing_state_is_adopted(tmp_path: Path) -> None:
    settings = soft_settings(tmp_path / "d", master_key=KEY_A.hex())
    create_app(settings).state.runtime.close()
    db = Database(settings.resolved_database_url)
    repository = BindingRepository(db)
    assert repository.get("default").key_fingerprint == SOFT_A.key_fingerprint  # type: ignore[union-attr]
    repository.remove("default")  # a data directory from before the binding existed
    create_app(settings).state.runtime.close()
    assert repository.get("default").key_fingerprint == SOFT_A.key_fingerprint  # type: ignore[union-attr]
    db.dispose()


@pytest.mark.pkcs11
def test_a_pkcs11_state_opened_on_another_token_is_refused(softhsm_factory: Callable[[str], SoftHsmToken],
                                                           tmp_path: Path) -> None:
    first, second = softhsm_factory("binding-one"), softhsm_factory("binding-two")

    def settings(token: SoftHsmToken):  # type: ignore[no-untyped-def]
        return soft_settings(tmp_path / "d", backend="pkcs11", pkcs11_module=token.module_path,
                             pkcs11_token_label=token.token_label, pkcs11_pin=token.pin)

    create_app(settings(first)).state.runtime.close()
    with pytest.raises(ConfigError, match=r"partition 'default' of this state database belongs to PKCS#11 token "
                                          r"'binding-one' \(serial [0-9a-f]+\), not to PKCS#11 token 'binding-two'"):
        create_app(settings(second))
    with pytest.raises(ConfigError, match="belongs to PKCS#11 token 'binding-one'"):
        create_app(soft_settings(tmp_path / "d", master_key=KEY_A.hex()))  # nor with the soft token
    create_app(settings(first)).state.runtime.close()  # the right token still starts
