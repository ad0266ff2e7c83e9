"""The TSB path → role table (reference §2) and its Ant-style matching."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from hsmgate.app import create_app
from hsmgate.auth.roles import OPEN_PATHS, ROLE_PATHS, Role, RoleTable, compile_pattern
from tests.conftest import soft_settings


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("/v1/key", "/v1/key", True),
    ("/v1/key", "/v1/key/x", False),
    ("/v1/key/**", "/v1/key", True),
    ("/v1/key/**", "/v1/key/a/b/attributes", True),
    ("/v1/key/**", "/v1/keystore/statistics", False),
    ("/v1/key/**/attributes", "/v1/key/{keyName}/attributes", True),
    ("/v1/filtered**ApprovalTask", "/v1/filteredSignApprovalTask", True),
    ("/v1/filtered**ApprovalTask", "/v1/filteredRequests", False),
    ("/v1/generateRandom/**", "/v1/generateRandom/{length}", True),
    ("/v1/hsm/log", "/v1/hsm/logs", False),
])
def test_ant_patterns(pattern: str, path: str, matches: bool) -> None:
    assert bool(compile_pattern(pattern).match(path)) is matches


def test_table_is_the_reference_table() -> None:
    table = RoleTable()
    assert table.roles_for("/v1/key") == {Role.KEY_MANAGEMENT}
    assert table.roles_for("/v1/key/{keyName}") == {Role.KEY_MANAGEMENT}
    assert table.roles_for("/v1/synchronousSign") == {Role.KEY_OPERATION}
    assert table.roles_for("/v1/certificate/synchronous/selfsign") == {Role.KEY_OPERATION}
    assert table.roles_for("/v1/generateRandom/{length}") == {Role.KEY_OPERATION}
    assert table.roles_for("/v1/filteredSignApprovalTask") == {Role.APPROVER}
    assert table.roles_for("/v1/keystore/statistics") == {Role.SERVICE}
    assert table.roles_for("/v1/approverManagement/approver") == {Role.APPROVER_KEY_MANAGEMENT}
    assert table.roles_for("/v1/somethingNew") == frozenset()
    assert sum(len(p) for p in ROLE_PATHS.values()) == 10 + 21 + 4 + 5 + 1


def test_lenient_table_adds_the_two_client_mixups_only() -> None:
    strict, lenient = RoleTable(), RoleTable(lenient=True)
    assert strict.roles_for("/v1/generateRandom/{length}") == {Role.KEY_OPERATION}
    assert lenient.roles_for("/v1/generateRandom/{length}") == {Role.KEY_OPERATION, Role.SERVICE}
    assert lenient.roles_for("/v1/certificate/request") == {Role.KEY_OPERATION, Role.KEY_MANAGEMENT}
    assert lenient.roles_for("/v1/synchronousSign") == strict.roles_for("/v1/synchronousSign")


def test_every_route_of_the_app_is_open_or_has_a_role(tmp_path: Path) -> None:
    """Deny by default is only safe if no real route is forgotten: add new routes to auth/roles.py."""
    app = create_app(soft_settings(tmp_path))
    table = RoleTable()
    uncovered = [route.path for route in app.routes if isinstance(route, APIRoute)
                 and route.path not in OPEN_PATHS and not table.roles_for(route.path)]
    assert uncovered == [], f"routes without a role in hsmgate/auth/roles.py: {uncovered}"
